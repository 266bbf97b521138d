// The README's main job, deploy/demo.sh, in a short run: a gateway and one agent per site
// (live capture from network namespaces when root), and every site's flows reach the
// gateway tagged with that site.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <map>

#include "../support/process.h"
#include "../support/temp_dir.h"

namespace flowgate::testing {
namespace {

// A loopback TCP port free at the time of asking (the demo binds it moments later).
int FreeLoopbackPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
    port = ntohs(address.sin_port);
  }
  ::close(fd);
  return port;
}

TEST(DemoTest, EverySiteReachesTheGatewayTaggedWithItsSite) {
  TempDir dir;
  const std::string bin_dir =
      std::filesystem::path(BinaryPath("flowgate-gateway")).parent_path().string();
  const int agents_port = FreeLoopbackPort();
  const int grpc_port = FreeLoopbackPort();
  ASSERT_NE(agents_port, 0);
  ASSERT_NE(grpc_port, 0);
  CommandResult demo = RunCommand(
      {std::string(FLOWGATE_SOURCE_DIR) + "/deploy/demo.sh", "--duration", "5", "--sites", "3",
       "--workdir", dir.Sub("work"), "--bin-dir", bin_dir, "--agents-port",
       std::to_string(agents_port), "--grpc-port", std::to_string(grpc_port)},
      std::chrono::seconds(240));
  ASSERT_FALSE(demo.timed_out) << demo.out << demo.err;
  ASSERT_EQ(demo.exit_code, 0) << demo.out << demo.err;
  if (::geteuid() == 0) {
    EXPECT_NE(demo.out.find("live capture"), std::string::npos) << demo.out;
  }

  // The merged stream, as the demo's own `nc -U | jq` reader saved it.
  std::ifstream stream(dir.Sub("work/stream.json"));
  ASSERT_TRUE(stream) << "the demo saved no stream";
  const std::map<std::string, std::string> site_networks = {
      {"site-a", "10.1."}, {"site-b", "10.2."}, {"site-c", "10.3."}};
  std::map<std::string, int> flows_by_site;
  std::string line;
  while (std::getline(stream, line)) {
    nlohmann::json message = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!message.is_object() || message.value("type", "") != "flow") continue;
    const std::string site = message["agent"].value("site", "");
    const std::string local_ip = message["flow"].value("local_ip", "");
    ASSERT_TRUE(site_networks.count(site)) << "a flow from an unknown site: " << line;
    // Each site's traffic comes from its own client network: the tag is the right one.
    EXPECT_EQ(local_ip.rfind(site_networks.at(site), 0), 0u) << line;
    ++flows_by_site[site];
  }
  for (const auto& [site, network] : site_networks) {
    EXPECT_GT(flows_by_site[site], 10) << site << " delivered too few flows\n" << demo.out;
  }

  // The demo ends by asking the gateway over gRPC, as a user would.
  for (const std::string probe : {"probe-site-a", "probe-site-b", "probe-site-c"}) {
    EXPECT_NE(demo.out.find(probe), std::string::npos) << demo.out;
  }
  EXPECT_NE(demo.out.find("flowgate top --by application --filter 'site == \"site-c\"'"),
            std::string::npos)
      << demo.out;
}

}  // namespace
}  // namespace flowgate::testing
