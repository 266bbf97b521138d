// A client of one ClickHouse server's HTTP interface (libcurl), and the RowBinary format it
// sends and reads: length-prefixed strings and little-endian integers, no escaping, so
// protobuf bytes travel as they are.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "flowgate/common/status.h"

namespace flowgate::storage {

class ClickHouseHttp {
 public:
  // `url`: http://HOST:PORT of the server; `database` is the default for unqualified names.
  ClickHouseHttp(std::string url, uint32_t timeout_ms);
  ~ClickHouseHttp();
  ClickHouseHttp(const ClickHouseHttp&) = delete;
  ClickHouseHttp& operator=(const ClickHouseHttp&) = delete;

  // Runs `sql` and returns the response body. Errors name the server: Unavailable when it
  // cannot be reached or times out, IoError with ClickHouse's own message for any HTTP
  // status but 200. Thread-safe (connections are pooled and kept alive).
  [[nodiscard]] Result<std::string> Query(std::string_view sql);
  // Runs a statement whose answer is of no interest (DDL, ALTER).
  [[nodiscard]] Status Execute(std::string_view sql);
  // Runs `INSERT INTO <into> FORMAT RowBinary` with `rows` (RowBinary) as the data.
  [[nodiscard]] Status Insert(std::string_view into, const std::string& rows);

  const std::string& url() const { return url_; }

 private:
  struct Connection;
  Result<std::string> Post(std::string_view query_parameter, std::string_view body);

  const std::string url_;
  const uint32_t timeout_ms_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<Connection>> idle_;  // guarded by mutex_
};

inline constexpr uint64_t kDayMs = 86'400'000;
// The id of the day partition (PARTITION BY toYYYYMMDD(date)) that `at_ms` falls in, as a
// number: 20240131.
uint32_t DayPartitionOf(uint64_t at_ms);
// The start (ms since the epoch) of the day whose partition id is `partition` ("20240131"),
// or 0 when it is not one.
uint64_t DayPartitionStartMs(std::string_view partition);

// SQL string literal of `text`: quoted, with quotes and backslashes escaped.
std::string SqlQuote(std::string_view text);

// RowBinary values, appended to `*out`.
void PutRowBinaryUInt8(uint8_t value, std::string* out);
void PutRowBinaryUInt64(uint64_t value, std::string* out);
void PutRowBinaryString(std::string_view value, std::string* out);
// An Array value starts with its element count; the elements follow.
void PutRowBinaryArraySize(uint64_t size, std::string* out);
// A Date column: days since 1970-01-01 of `at_ms`.
void PutRowBinaryDateOf(uint64_t at_ms, std::string* out);

// Reads a RowBinary answer value by value. Every Read* returns false (and reads nothing
// more) once the data ends early, so a truncated answer is an error, never garbage.
class RowBinaryReader {
 public:
  explicit RowBinaryReader(std::string_view data) : data_(data) {}
  bool done() const { return data_.empty(); }
  [[nodiscard]] bool ReadUInt64(uint64_t* value);
  [[nodiscard]] bool ReadUInt8(uint8_t* value);
  // A String value; the view points into the data.
  [[nodiscard]] bool ReadString(std::string_view* value);
  // The element count of an Array value (its elements follow).
  [[nodiscard]] bool ReadArraySize(uint64_t* size) { return ReadVarint(size); }

 private:
  bool ReadVarint(uint64_t* value);
  std::string_view data_;
};

}  // namespace flowgate::storage
