// The ClickHouse store's wire format pieces: RowBinary both ways, SQL quoting, and the day
// partitions retention drops.
#include <gtest/gtest.h>

#include <string>

#include "../../storage/src/clickhouse_http.h"

namespace flowgate::storage {
namespace {

TEST(RowBinary, ValuesReadBackAsWritten) {
  std::string rows;
  const std::string long_text(300, 'x');  // a length that needs two varint bytes
  PutRowBinaryUInt64(0x0102030405060708ull, &rows);
  PutRowBinaryUInt8(7, &rows);
  PutRowBinaryString(long_text, &rows);
  PutRowBinaryString(std::string("a\0b", 3), &rows);
  PutRowBinaryString("", &rows);
  // Little-endian integers and a LEB128 length, as ClickHouse reads them.
  EXPECT_EQ(rows.substr(0, 8), std::string("\x08\x07\x06\x05\x04\x03\x02\x01", 8));
  EXPECT_EQ(rows.substr(9, 2), std::string("\xac\x02", 2));

  RowBinaryReader reader(rows);
  uint64_t number = 0;
  uint8_t byte = 0;
  std::string_view text;
  ASSERT_TRUE(reader.ReadUInt64(&number));
  EXPECT_EQ(number, 0x0102030405060708ull);
  ASSERT_TRUE(reader.ReadUInt8(&byte));
  EXPECT_EQ(byte, 7);
  ASSERT_TRUE(reader.ReadString(&text));
  EXPECT_EQ(text, long_text);
  ASSERT_TRUE(reader.ReadString(&text));
  EXPECT_EQ(text, std::string_view("a\0b", 3));
  ASSERT_TRUE(reader.ReadString(&text));
  EXPECT_EQ(text, "");
  EXPECT_TRUE(reader.done());
}

TEST(RowBinary, TruncatedAnswersFailInsteadOfReadingPastTheEnd) {
  std::string rows;
  PutRowBinaryString("hello", &rows);
  PutRowBinaryUInt64(42, &rows);
  for (size_t cut = 0; cut < rows.size(); ++cut) {
    RowBinaryReader reader(std::string_view(rows).substr(0, cut));
    std::string_view text;
    uint64_t number = 0;
    EXPECT_FALSE(reader.ReadString(&text) && reader.ReadUInt64(&number)) << "cut at " << cut;
  }
  // A length claiming more than there is.
  const std::string claims_127_bytes =
      "\x7f"
      "abc";
  RowBinaryReader lying(claims_127_bytes);
  std::string_view text;
  EXPECT_FALSE(lying.ReadString(&text));
}

TEST(RowBinary, DatesAreDaysSinceTheEpoch) {
  std::string rows;
  PutRowBinaryDateOf(0, &rows);
  PutRowBinaryDateOf(1'706'659'200'000 + 3'600'000, &rows);  // 2024-01-31T01:00Z: day 19753
  EXPECT_EQ(rows, std::string("\x00\x00\x29\x4d", 4));
}

TEST(SqlQuote, EscapesQuotesAndBackslashes) {
  EXPECT_EQ(SqlQuote("plain"), "'plain'");
  EXPECT_EQ(SqlQuote("it's"), "'it\\'s'");
  EXPECT_EQ(SqlQuote("a\\' OR 1=1 --"), "'a\\\\\\' OR 1=1 --'");
}

TEST(DayPartitions, MatchToYYYYMMDDBothWays) {
  struct Case {
    uint64_t day_start_ms;
    uint32_t partition;
  } cases[] = {{0, 19700101},
               {951'782'400'000, 20000229},  // a leap day of a century divisible by 400
               {1'706'659'200'000, 20240131},
               {1'709'164'800'000, 20240229},
               {1'735'603'200'000, 20241231},
               {4'107'542'400'000, 21000301}};  // 2100 is not a leap year
  for (const Case& c : cases) {
    EXPECT_EQ(DayPartitionOf(c.day_start_ms), c.partition);
    EXPECT_EQ(DayPartitionOf(c.day_start_ms + kDayMs - 1), c.partition);
    EXPECT_EQ(DayPartitionStartMs(std::to_string(c.partition)), c.day_start_ms);
  }
  EXPECT_EQ(DayPartitionStartMs("2024013"), 0u);
  EXPECT_EQ(DayPartitionStartMs("2024-01-"), 0u);
  EXPECT_EQ(DayPartitionStartMs("20241301"), 0u);
}

}  // namespace
}  // namespace flowgate::storage
