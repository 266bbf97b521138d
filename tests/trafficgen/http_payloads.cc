#include <ctime>

#include "payloads.h"

namespace flowgate::trafficgen {
namespace {

std::string HttpDate(uint64_t unix_us) {
  const std::time_t seconds = static_cast<std::time_t>(unix_us / 1000000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[64];
  // strftime's %a/%b follow the C locale, which is what HTTP requires; the program never
  // calls setlocale().
  std::strftime(text, sizeof(text), "%a, %d %b %Y %H:%M:%S GMT", &utc);
  return text;
}

}  // namespace

std::string HttpGetRequest(std::string_view host, std::string_view path) {
  std::string request = "GET ";
  request += path;
  request += " HTTP/1.1\r\nHost: ";
  request += host;
  request +=
      "\r\n"
      "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0\r\n"
      "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
      "Accept-Language: en-US,en;q=0.5\r\n"
      "Accept-Encoding: gzip, deflate\r\n"
      "Connection: keep-alive\r\n"
      "Upgrade-Insecure-Requests: 1\r\n"
      "\r\n";
  return request;
}

std::string HttpOkResponse(std::string_view server, std::string_view content_type,
                           std::string_view body, uint64_t unix_us) {
  std::string response = "HTTP/1.1 200 OK\r\nDate: " + HttpDate(unix_us) + "\r\nServer: ";
  response += server;
  response += "\r\nContent-Type: ";
  response += content_type;
  response += "\r\nContent-Length: " + std::to_string(body.size()) +
              "\r\n"
              "Cache-Control: max-age=60\r\n"
              "Connection: keep-alive\r\n"
              "\r\n";
  response += body;
  return response;
}

}  // namespace flowgate::trafficgen
