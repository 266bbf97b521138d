#include "clickhouse_http.h"

#include <curl/curl.h>

#include <cstring>

namespace flowgate::storage {
namespace {

void InitCurlOnce() {
  // curl_global_init is not thread-safe and must run before any handle exists.
  static const CURLcode initialised = curl_global_init(CURL_GLOBAL_DEFAULT);
  (void)initialised;
}

size_t AppendBody(char* data, size_t size, size_t count, void* user) {
  static_cast<std::string*>(user)->append(data, size * count);
  return size * count;
}

std::string Trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

}  // namespace

struct ClickHouseHttp::Connection {
  struct Cleanup {
    void operator()(CURL* handle) const { curl_easy_cleanup(handle); }
  };
  std::unique_ptr<CURL, Cleanup> handle{curl_easy_init()};
};

ClickHouseHttp::ClickHouseHttp(std::string url, uint32_t timeout_ms)
    : url_(std::move(url)), timeout_ms_(timeout_ms) {
  InitCurlOnce();
}

ClickHouseHttp::~ClickHouseHttp() = default;

Result<std::string> ClickHouseHttp::Query(std::string_view sql) { return Post("", sql); }

Status ClickHouseHttp::Execute(std::string_view sql) {
  Result<std::string> answer = Post("", sql);
  return answer.ok() ? Status::Ok() : answer.status();
}

Status ClickHouseHttp::Insert(std::string_view into, const std::string& rows) {
  Result<std::string> answer = Post("INSERT INTO " + std::string(into) + " FORMAT RowBinary", rows);
  return answer.ok() ? Status::Ok() : answer.status();
}

Result<std::string> ClickHouseHttp::Post(std::string_view query_parameter, std::string_view body) {
  std::unique_ptr<Connection> connection;
  {
    std::lock_guard lock(mutex_);
    if (!idle_.empty()) {
      connection = std::move(idle_.back());
      idle_.pop_back();
    }
  }
  if (connection == nullptr) connection = std::make_unique<Connection>();
  CURL* curl = connection->handle.get();
  if (curl == nullptr) return Status::Internal("libcurl could not make a handle");

  // Without wait_end_of_query an error met after the answer began streaming arrives as
  // HTTP 200 with the message appended to the data; with it, as an error status.
  std::string url = url_ + "/?wait_end_of_query=1";
  if (!query_parameter.empty()) {
    std::unique_ptr<char, decltype(&curl_free)> escaped(
        curl_easy_escape(curl, query_parameter.data(), static_cast<int>(query_parameter.size())),
        &curl_free);
    if (escaped == nullptr) return Status::Internal("libcurl could not escape a query");
    url += "&query=";
    url += escaped.get();
  }
  std::string answer;
  char error[CURL_ERROR_SIZE] = {0};
  curl_easy_reset(curl);
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_POST, 1L);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &AppendBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &answer);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_ms_));
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  // No "Expect: 100-continue" round trip before large bodies.
  struct curl_slist* headers = curl_slist_append(nullptr, "Expect:");
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> header_list(headers,
                                                                          &curl_slist_free_all);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, header_list.get());
  const CURLcode code = curl_easy_perform(curl);
  if (code != CURLE_OK) {
    // The connection may be broken: do not pool it.
    return Status::Unavailable("ClickHouse at " + url_ + " did not answer: " +
                               (error[0] != 0 ? std::string(error) : curl_easy_strerror(code)));
  }
  long http_status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &http_status);
  {
    std::lock_guard lock(mutex_);
    idle_.push_back(std::move(connection));
  }
  if (http_status != 200) {
    return Status::IoError("ClickHouse at " + url_ + " answered HTTP " +
                           std::to_string(http_status) + ": " + Trimmed(answer.substr(0, 2000)));
  }
  return answer;
}

// Civil-date conversions after Howard Hinnant's public-domain algorithms (days_from_civil,
// civil_from_days), proleptic Gregorian, as ClickHouse's Date is.
uint32_t DayPartitionOf(uint64_t at_ms) {
  const int64_t z = static_cast<int64_t>(at_ms / kDayMs) + 719468;
  const int64_t era = z / 146097;
  const int64_t doe = z - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  const int64_t day = doy - (153 * mp + 2) / 5 + 1;
  const int64_t month = mp < 10 ? mp + 3 : mp - 9;
  const int64_t year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  return static_cast<uint32_t>(year * 10000 + month * 100 + day);
}

uint64_t DayPartitionStartMs(std::string_view partition) {
  if (partition.size() != 8 ||
      partition.find_first_not_of("0123456789") != std::string_view::npos) {
    return 0;
  }
  const auto number = [&](size_t at, size_t size) {
    int64_t value = 0;
    for (char c : partition.substr(at, size)) value = value * 10 + (c - '0');
    return value;
  };
  int64_t year = number(0, 4);
  const int64_t month = number(4, 2), day = number(6, 2);
  if (year < 1970 || month < 1 || month > 12 || day < 1 || day > 31) return 0;
  year -= month <= 2 ? 1 : 0;
  const int64_t era = year / 400;
  const int64_t yoe = year - era * 400;
  const int64_t doy = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  const int64_t days = era * 146097 + doe - 719468;
  return days < 0 ? 0 : static_cast<uint64_t>(days) * kDayMs;
}

std::string SqlQuote(std::string_view text) {
  std::string quoted = "'";
  for (char c : text) {
    if (c == '\'' || c == '\\') quoted.push_back('\\');
    quoted.push_back(c);
  }
  quoted.push_back('\'');
  return quoted;
}

void PutRowBinaryUInt8(uint8_t value, std::string* out) {
  out->push_back(static_cast<char>(value));
}

void PutRowBinaryUInt64(uint64_t value, std::string* out) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>(value >> (8 * i)));
}

void PutRowBinaryArraySize(uint64_t size, std::string* out) {
  while (size >= 0x80) {
    out->push_back(static_cast<char>((size & 0x7f) | 0x80));
    size >>= 7;
  }
  out->push_back(static_cast<char>(size));
}

void PutRowBinaryString(std::string_view value, std::string* out) {
  PutRowBinaryArraySize(value.size(), out);  // the same LEB128 length
  out->append(value);
}

void PutRowBinaryDateOf(uint64_t at_ms, std::string* out) {
  const uint64_t days = at_ms / 86'400'000;
  out->push_back(static_cast<char>(days & 0xff));
  out->push_back(static_cast<char>((days >> 8) & 0xff));
}

bool RowBinaryReader::ReadUInt64(uint64_t* value) {
  if (data_.size() < 8) return false;
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(data_[static_cast<size_t>(i)]);
  *value = v;
  data_.remove_prefix(8);
  return true;
}

bool RowBinaryReader::ReadUInt8(uint8_t* value) {
  if (data_.empty()) return false;
  *value = static_cast<uint8_t>(data_[0]);
  data_.remove_prefix(1);
  return true;
}

bool RowBinaryReader::ReadVarint(uint64_t* value) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (data_.empty()) return false;
    const uint8_t byte = static_cast<uint8_t>(data_[0]);
    data_.remove_prefix(1);
    v |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      *value = v;
      return true;
    }
  }
  return false;
}

bool RowBinaryReader::ReadString(std::string_view* value) {
  uint64_t size = 0;
  if (!ReadVarint(&size) || size > data_.size()) {
    data_ = {};
    return false;
  }
  *value = data_.substr(0, size);
  data_.remove_prefix(size);
  return true;
}

}  // namespace flowgate::storage
