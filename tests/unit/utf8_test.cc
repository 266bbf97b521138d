// UTF-8 checks for outside text (common/include/flowgate/common/utf8.h).
#include "flowgate/common/utf8.h"

#include <gtest/gtest.h>

#include <string>

namespace flowgate {
namespace {

TEST(Utf8Test, ValidTextIsKeptAsItIs) {
  for (const std::string text : {"", "plain ascii", "caf\xC3\xA9", "\xE2\x82\xAC 5",
                                 "\xF0\x9F\x98\x80", "\xF4\x8F\xBF\xBF"}) {
    EXPECT_TRUE(IsValidUtf8(text)) << text;
    EXPECT_EQ(ValidUtf8(text), text);
  }
}

TEST(Utf8Test, EveryBadByteBecomesOneReplacementCharacter) {
  const std::string kBad = "\xEF\xBF\xBD";
  const struct {
    std::string in, out;
  } cases[] = {
      {"caf\xE9", "caf" + kBad},                        // Latin-1
      {"\xC0\xAF", kBad + kBad},                        // overlong '/'
      {"\xED\xA0\x80", kBad + kBad + kBad},             // a UTF-16 surrogate
      {"\xF4\x90\x80\x80", kBad + kBad + kBad + kBad},  // past U+10FFFF
      {"ab\xE2\x82", "ab" + kBad + kBad},               // cut short at the end
      {"\xFF\xFE", kBad + kBad},
      {std::string("nul\0ok", 6), std::string("nul\0ok", 6)},  // valid, if unusual
  };
  for (const auto& c : cases) {
    EXPECT_EQ(IsValidUtf8(c.in), c.in == c.out) << c.in;
    EXPECT_EQ(ValidUtf8(c.in), c.out) << c.in;
    EXPECT_TRUE(IsValidUtf8(ValidUtf8(c.in))) << c.in;
    // Into a reused buffer (the agent's events): the old text goes, whatever its length.
    for (std::string reused : {std::string(), std::string("x"), std::string(100, 'y')}) {
      AssignValidUtf8(c.in, &reused);
      EXPECT_EQ(reused, c.out) << c.in;
    }
  }
}

}  // namespace
}  // namespace flowgate
