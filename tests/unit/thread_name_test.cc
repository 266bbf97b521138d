// Thread names (common/include/flowgate/common/thread_name.h).
#include "flowgate/common/thread_name.h"

#include <pthread.h>

#include <gtest/gtest.h>

#include <string>
#include <thread>

namespace flowgate {
namespace {

std::string NameOf(pthread_t thread) {
  char name[16] = {};
  if (pthread_getname_np(thread, name, sizeof name) != 0) return "<unreadable>";
  return name;
}

TEST(ThreadNameTest, NamesTheCallingThreadOnly) {
  const std::string before = NameOf(pthread_self());
  std::string seen;
  std::thread named([&] {
    NameThisThread("ingest-commit");
    seen = NameOf(pthread_self());
  });
  named.join();
  EXPECT_EQ(seen, "ingest-commit");
  EXPECT_EQ(NameOf(pthread_self()), before);
}

// Linux refuses a name of 16 bytes or more outright; the helper keeps its first 15.
TEST(ThreadNameTest, LongNamesAreCutToWhatTheKernelKeeps) {
  std::string seen;
  std::thread named([&] {
    NameThisThread("a-name-far-longer-than-fifteen-bytes");
    seen = NameOf(pthread_self());
  });
  named.join();
  EXPECT_EQ(seen, "a-name-far-long");
}

}  // namespace
}  // namespace flowgate
