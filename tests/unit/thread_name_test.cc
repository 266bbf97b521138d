// Thread names (common/include/flowgate/common/thread_name.h).
#include "flowgate/common/thread_name.h"

#include <pthread.h>

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <thread>

namespace flowgate {
namespace {

std::string NameOf(pthread_t thread) {
  char name[16] = {};
  if (pthread_getname_np(thread, name, sizeof name) != 0) return "<unreadable>";
  return name;
}

// The name a fresh thread has after NameThisThread(name).
std::string NameOfAThreadNamed(std::string_view name) {
  std::string seen;
  std::thread named([&] {
    NameThisThread(name);
    seen = NameOf(pthread_self());
  });
  named.join();
  return seen;
}

TEST(ThreadNameTest, NamesTheCallingThreadOnly) {
  const std::string before = NameOf(pthread_self());
  EXPECT_EQ(NameOfAThreadNamed("ingest-commit"), "ingest-commit");
  EXPECT_EQ(NameOf(pthread_self()), before);
}

// Linux refuses a name of 16 bytes or more outright; the helper keeps its first 15.
TEST(ThreadNameTest, LongNamesAreCutToWhatTheKernelKeeps) {
  EXPECT_EQ(NameOfAThreadNamed("a-name-far-longer-than-fifteen-bytes"), "a-name-far-long");
}

}  // namespace
}  // namespace flowgate
