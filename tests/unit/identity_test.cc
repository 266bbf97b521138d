// Identity helpers shared by agent and gateway: UUIDs and hex text.
#include "flowgate/common/identity.h"

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <regex>

namespace flowgate {
namespace {

TEST(IdentityTest, UuidsAreVersion4AndDistinct) {
  const std::string a = MakeUuid(), b = MakeUuid();
  const std::regex v4("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");
  EXPECT_TRUE(std::regex_match(a, v4)) << a;
  EXPECT_TRUE(std::regex_match(b, v4)) << b;
  EXPECT_NE(a, b);
}

TEST(IdentityTest, HexLowerWithAndWithoutSeparator) {
  const uint8_t bytes[] = {0x00, 0x1b, 0xa0, 0xff, 0x7e, 0x09};
  std::string text = "a longer text the buffer had before";
  AssignHexLower(bytes, sizeof bytes, '\0', &text);
  EXPECT_EQ(text, "001ba0ff7e09");
  AssignHexLower(bytes, 0, '\0', &text);
  EXPECT_EQ(text, "");
  text = "a longer text the buffer had before";
  AssignHexLower(bytes, sizeof bytes, ':', &text);
  EXPECT_EQ(text, "00:1b:a0:ff:7e:09");
  AssignHexLower(bytes, 1, ':', &text);
  EXPECT_EQ(text, "00");
  AssignHexLower(bytes, 0, ':', &text);
  EXPECT_EQ(text, "");
  char fixed[13] = "............";
  WriteHexLower(bytes, 5, fixed);
  EXPECT_STREQ(fixed, "001ba0ff7e..");  // 2 digits per byte, nothing past them
}

TEST(IdentityTest, ProcessUsageCountsFirstTouchesOfFreshMemory) {
  constexpr size_t kBytes = 8u << 20;
  void* memory =
      ::mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(memory, MAP_FAILED);
  const ProcessUsage before = CurrentProcessUsage();
  auto* bytes = static_cast<volatile char*>(memory);
  for (size_t at = 0; at < kBytes; at += 4096) bytes[at] = 1;
  const ProcessUsage after = CurrentProcessUsage();
  ::munmap(memory, kBytes);
  // 2048 faults with 4 KiB pages; at least 4 even if the kernel backs it with huge pages.
  EXPECT_GE(after.minor_faults - before.minor_faults, 4u);
  EXPECT_GT(after.resident_bytes, 0u);
}

}  // namespace
}  // namespace flowgate
