// The log limiter for lines a peer can trigger at will.
#include "flowgate/common/log.h"

#include <gtest/gtest.h>

namespace flowgate {
namespace {

TEST(LogLimiterTest, HoldsBackPastTheRateAndReportsOnceTheSecondIsOver) {
  SetLogLevel(LogLevel::kError);  // the lines themselves are not what this test reads
  LogLimiter limiter("test", "test lines", 3);
  const auto start = LogLimiter::Clock::now();
  for (int i = 0; i < 3; ++i) limiter.Log(LogLevel::kInfo, "let through", start);
  EXPECT_FALSE(limiter.flush_due().has_value()) << "nothing held back yet";
  limiter.Log(LogLevel::kWarning, "held back", start);
  ASSERT_TRUE(limiter.flush_due().has_value());
  EXPECT_EQ(*limiter.flush_due(), start + std::chrono::seconds(1));
  limiter.Flush(start + std::chrono::milliseconds(500));  // still inside its second
  EXPECT_TRUE(limiter.flush_due().has_value());
  limiter.Flush(start + std::chrono::seconds(1));
  EXPECT_FALSE(limiter.flush_due().has_value()) << "the count was reported";
  // A new second lets lines through again.
  const auto later = start + std::chrono::seconds(2);
  for (int i = 0; i < 3; ++i) limiter.Log(LogLevel::kInfo, "let through", later);
  EXPECT_FALSE(limiter.flush_due().has_value());
  SetLogLevel(LogLevel::kInfo);
}

}  // namespace
}  // namespace flowgate
