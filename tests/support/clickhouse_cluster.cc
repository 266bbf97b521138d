#include "clickhouse_cluster.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <functional>
#include <random>
#include <sstream>
#include <utility>

#include "process.h"

namespace flowgate::testing {
namespace {

// Bounds the script's own bounded waits (30 s per server) with room to spare.
constexpr std::chrono::seconds kScriptTimeout(120);
constexpr std::chrono::seconds kQueryTimeout(60);
// Probed base ports stay below Linux's ephemeral range (32768-60999), where outgoing
// connections would take them at random.
constexpr int kFirstProbedPort = 20000;
constexpr int kLastProbedPort = 32000;
constexpr int kStartAttempts = 5;

std::string Trim(std::string text) {
  const auto not_space = [](unsigned char c) { return !std::isspace(c); };
  text.erase(std::find_if(text.rbegin(), text.rend(), not_space).base(), text.end());
  text.erase(text.begin(), std::find_if(text.begin(), text.end(), not_space));
  return text;
}

// True when nothing holds `port` on 127.0.0.1. SO_REUSEADDR, as the server binds: a
// connection of an earlier test lingering in TIME_WAIT does not keep the port.
bool PortFree(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const int on = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<uint16_t>(port));
  const bool free = ::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
  ::close(fd);
  return free;
}

std::string ScriptPath(const std::string& source_dir) {
  return source_dir + "/deploy/clickhouse-cluster.sh";
}

}  // namespace

bool ClickHouseCluster::Installed() { return ::access(kServerBinary, X_OK) == 0; }

// From a random starting point, so that tests started together rarely pick the same range
// (Start retries if one does).
int ClickHouseCluster::FreeBasePort(int shards) {
  const int span = 2 * shards;
  const int slots = (kLastProbedPort - kFirstProbedPort) / span;
  std::mt19937 random(std::random_device{}());
  const int first = std::uniform_int_distribution<int>(0, slots - 1)(random);
  for (int i = 0; i < slots; ++i) {
    const int base = kFirstProbedPort + ((first + i) % slots) * span;
    bool all_free = true;
    for (int port = base; port < base + span && all_free; ++port) all_free = PortFree(port);
    if (all_free) return base;
  }
  return 0;
}

std::string ClickHouseCluster::DirFor(const std::string& test_name) {
  // One directory per build and test: another build's run of the same test at the same
  // time must not stop this one's servers.
  std::ostringstream name;
  name << "flowgate-clickhouse-" << std::hex << std::hash<std::string>{}(FLOWGATE_BIN_DIR) << "-";
  for (char c : test_name) name << (std::isalnum(static_cast<unsigned char>(c)) ? c : '_');
  return (std::filesystem::temp_directory_path() / name.str()).string();
}

Result<ClickHouseCluster> ClickHouseCluster::Start(const std::string& dir,
                                                   const ClickHouseClusterOptions& options) {
  if (options.source_dir.empty()) {
    return Status::InvalidArgument("ClickHouseClusterOptions.source_dir is required");
  }
  if (options.shards < 1) return Status::InvalidArgument("a cluster needs at least one shard");
  const std::string script = ScriptPath(options.source_dir);
  std::error_code error;
  if (std::filesystem::exists(std::filesystem::path(dir) / "cluster.env")) {
    // A crashed run's servers: gone before the directory is.
    CommandResult stop = RunCommand({"/bin/bash", script, "stop", "--dir", dir}, kScriptTimeout);
    if (stop.exit_code != 0) {
      return Status::Internal("stopping the servers left in " + dir + ": " + Trim(stop.err));
    }
  }
  std::filesystem::remove_all(dir, error);
  if (error) return Status::IoError("removing " + dir + ": " + error.message());

  std::string last_error;
  for (int attempt = 0; attempt < kStartAttempts; ++attempt) {
    ClickHouseClusterOptions chosen = options;
    if (chosen.base_port == 0) chosen.base_port = FreeBasePort(options.shards);
    if (chosen.base_port == 0) return Status::Unavailable("no free port range for ClickHouse");
    CommandResult start = RunCommand(
        {"/bin/bash", script, "start", "--dir", dir, "--shards", std::to_string(chosen.shards),
         "--base-port", std::to_string(chosen.base_port), "--cluster", chosen.cluster},
        kScriptTimeout);
    if (start.exit_code == 0) {
      std::vector<std::string> urls;
      std::istringstream lines(start.out);
      for (std::string line; std::getline(lines, line);) {
        if (line.rfind("urls ", 0) != 0) continue;
        std::istringstream list(line.substr(5));
        for (std::string url; std::getline(list, url, ',');) urls.push_back(url);
      }
      ClickHouseCluster cluster(dir, chosen, std::move(urls));
      if (static_cast<int>(cluster.urls_.size()) != chosen.shards) {
        return Status::Internal(script + " start printed no urls line for " +
                                std::to_string(chosen.shards) + " shards: " + start.out);
      }
      return cluster;
    }
    last_error = start.timed_out ? script + " start timed out" : Trim(start.err);
    // Only a race for a probed port (another test took it since) is worth another try.
    const bool port_race = last_error.find("already taken") != std::string::npos ||
                           last_error.find("Address already in use") != std::string::npos;
    if (options.base_port != 0 || !port_race) break;
  }
  return Status::Unavailable("starting ClickHouse in " + dir + ": " + last_error);
}

ClickHouseCluster::ClickHouseCluster(std::string dir, ClickHouseClusterOptions options,
                                     std::vector<std::string> urls)
    : dir_(std::move(dir)), options_(std::move(options)), urls_(std::move(urls)) {}

ClickHouseCluster::ClickHouseCluster(ClickHouseCluster&& other) noexcept
    : dir_(std::exchange(other.dir_, {})),
      options_(std::move(other.options_)),
      urls_(std::move(other.urls_)) {}

ClickHouseCluster::~ClickHouseCluster() {
  if (dir_.empty()) return;
  RunScript({"stop"}).IgnoreError();
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

Status ClickHouseCluster::RunScript(const std::vector<std::string>& args, std::string* out) const {
  std::vector<std::string> argv = {"/bin/bash", ScriptPath(options_.source_dir)};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.insert(argv.end(), {"--dir", dir_});
  CommandResult result = RunCommand(argv, kScriptTimeout);
  if (out != nullptr) *out = result.out;
  if (result.exit_code == 0) return Status::Ok();
  std::string command = "clickhouse-cluster.sh";
  for (const std::string& arg : args) command += " " + arg;
  return Status::Unavailable(command +
                             (result.timed_out ? ": timed out" : ": " + Trim(result.err)));
}

Status ClickHouseCluster::StopShard(int k) {
  if (k < 1 || k > options_.shards) return Status::InvalidArgument("no shard " + std::to_string(k));
  return RunScript({"stop", "--shard", std::to_string(k)});
}

Status ClickHouseCluster::StartShard(int k) {
  if (k < 1 || k > options_.shards) return Status::InvalidArgument("no shard " + std::to_string(k));
  return RunScript({"start", "--shard", std::to_string(k)});
}

Result<std::string> ClickHouseCluster::Query(const std::string& url, const std::string& sql) const {
  const auto shard = std::find(urls_.begin(), urls_.end(), url);
  if (shard == urls_.end()) return Status::InvalidArgument(url + " is not a shard of this cluster");
  // The script's port scheme: a shard's native port follows its HTTP port.
  const int native_port = options_.base_port + 2 * static_cast<int>(shard - urls_.begin()) + 1;
  CommandResult result = RunCommand(
      {kClientBinary, "--host", "127.0.0.1", "--port", std::to_string(native_port), "--query", sql},
      kQueryTimeout);
  if (result.exit_code == 0) return std::move(result.out);
  return Status::IoError(url + ": " + (result.timed_out ? "no answer in time" : Trim(result.err)));
}

}  // namespace flowgate::testing
