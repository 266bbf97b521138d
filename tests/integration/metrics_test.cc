// Issue 7: both daemons serve Prometheus metrics (--metrics HOST:PORT). A scrape must be
// valid text exposition format, and its counters must move when traffic flows: packets an
// agent read, events it sent and had acknowledged, events the gateway stored, per agent.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "../support/gateway_process.h"
#include "../support/ndpi_reference.h"
#include "../support/pcap_file.h"
#include "../support/process.h"
#include "../support/prometheus.h"
#include "../support/temp_dir.h"
#include "flowgate/common/text_file.h"

namespace flowgate::testing {
namespace {

using std::chrono::milliseconds;

// One scrape, checked as Prometheus would check it; fails the test on anything invalid.
Scrape ScrapeOrFail(const std::string& address) {
  std::string error;
  std::optional<Scrape> scrape = ScrapeMetrics(address, &error);
  EXPECT_TRUE(scrape.has_value()) << error;
  return scrape.value_or(Scrape{});
}

// Scrapes until `done` holds (bounded); returns the last scrape.
Scrape ScrapeUntil(const std::string& address, const std::function<bool(const Scrape&)>& done,
                   const std::string& what) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  Scrape scrape;
  while (std::chrono::steady_clock::now() < deadline) {
    scrape = ScrapeOrFail(address);
    if (::testing::Test::HasFailure() || done(scrape)) return scrape;
    std::this_thread::sleep_for(milliseconds(50));  // polling interval, not synchronisation
  }
  ADD_FAILURE() << "timed out waiting for " << what;
  return scrape;
}

TEST(MetricsTest, GatewayAndAgentCountersMoveWithTraffic) {
  TempDir dir;
  const std::string capture = TestdataDir() + "/ndpi-4.2/pcap/zoom.pcap";
  const std::optional<std::vector<PcapRecord>> records = ReadEthernetPcap(capture);
  ASSERT_TRUE(records.has_value()) << capture << " is not a classic Ethernet pcap";
  const uint64_t packets = records->size();
  ASSERT_GT(packets, 100u) << capture;
  GatewayProcess gateway({"--data-dir", dir.Sub("db"), "--json-socket", dir.Sub("gw.sock"),
                          "--metrics", "127.0.0.1:0"});
  ASSERT_TRUE(gateway.ready()) << gateway.log();
  const std::string gateway_metrics = MetricsAddressFromLog(gateway.log());
  ASSERT_FALSE(gateway_metrics.empty()) << gateway.log();

  const Scrape idle = ScrapeOrFail(gateway_metrics);
  ASSERT_FALSE(::testing::Test::HasFailure());
  EXPECT_EQ(idle.Get("flowgate_gateway_events_stored_total"), 0.0);
  EXPECT_EQ(idle.types.at("flowgate_gateway_events_stored_total"), "counter");
  EXPECT_EQ(idle.Get("flowgate_gateway_agents"), 0.0);
  EXPECT_GT(idle.Get("process_resident_memory_bytes").value_or(0), 0.0);
  EXPECT_GT(idle.Get("flowgate_gateway_store_disk_bytes").value_or(0), 0.0);
  EXPECT_EQ(HttpGet(gateway_metrics, "/other")->status, 404);

  // The agent reads its capture through a FIFO the test holds open, so it is still running
  // (and serving metrics) after it has read every packet.
  const std::string fifo = dir.Sub("capture.pcap");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  BackgroundProcess agent({BinaryPath("flowgate-agent"), "-r", fifo, "--gateway",
                           gateway.endpoint(), "--plaintext", "--name", "probe-1", "--site", "lab",
                           "--metrics", "127.0.0.1:0"});
  {
    std::ofstream writer(fifo, std::ios::binary);  // opens once the agent opened its end
    const Result<std::string> bytes = ReadTextFile(capture, "capture");
    ASSERT_TRUE(bytes.ok()) << bytes.status().message();
    writer.write(bytes->data(), static_cast<std::streamsize>(bytes->size()));
    writer.flush();
    ASSERT_TRUE(writer.good());
    std::optional<std::string> line =
        agent.WaitForStderrLine("metrics at", std::chrono::seconds(30));
    ASSERT_TRUE(line.has_value()) << agent.stderr_text();
    const std::string agent_metrics = MetricsAddressFromLog(*line);

    const Scrape running = ScrapeUntil(
        agent_metrics,
        [&](const Scrape& s) {
          const double sent = s.Get("flowgate_agent_events_sent_total").value_or(0);
          return s.Sum("flowgate_agent_capture_packets_total") == static_cast<double>(packets) &&
                 sent > 0 && s.Get("flowgate_agent_events_acked_total") == sent;
        },
        "the agent to read every packet and have its events acknowledged");
    ASSERT_FALSE(::testing::Test::HasFailure()) << agent.stderr_text();
    EXPECT_EQ(running.Get("flowgate_agent_capture_packets_total{interface=\"capture.pcap\"}"),
              static_cast<double>(packets));
    EXPECT_GT(running.Get("flowgate_agent_flows_created_total").value_or(0), 10.0);
    // Packets that do not decode (zoom.pcap has a few non-IP frames) are counted, not lost.
    EXPECT_LT(running.Sum("flowgate_agent_capture_discarded_packets_total"),
              static_cast<double>(packets) / 10);
    EXPECT_EQ(running.Sum("flowgate_agent_events_dropped_total"), 0.0);
    EXPECT_EQ(running.types.at("flowgate_agent_worker_queue_packets"), "gauge");
    const double acked = running.Get("flowgate_agent_events_acked_total").value_or(0);

    // What the agent had acknowledged, the gateway stored: in total and under its name.
    const Scrape busy = ScrapeOrFail(gateway_metrics);
    EXPECT_EQ(busy.Get("flowgate_gateway_events_stored_total"), acked);
    EXPECT_EQ(busy.Get("flowgate_gateway_agents"), 1.0);
    std::string agent_series;
    for (const auto& [series, value] : busy.samples) {
      if (series.rfind("flowgate_gateway_agent_events_applied_total{", 0) == 0) {
        agent_series = series;
        EXPECT_EQ(value, acked) << series;
      }
    }
    EXPECT_NE(agent_series.find("name=\"probe-1\""), std::string::npos) << agent_series;
    EXPECT_NE(agent_series.find("site=\"lab\""), std::string::npos) << agent_series;
    EXPECT_EQ(busy.Sum("flowgate_gateway_agent_online"), 1.0);
    EXPECT_EQ(busy.Sum("flowgate_gateway_batches_rejected_total"), 0.0);
  }  // closes the FIFO: the agent reaches the end of its capture and exits
  EXPECT_EQ(agent.StopWith(0, std::chrono::seconds(60)), 0) << agent.stderr_text();
}

TEST(MetricsTest, BadOrBusyAddressIsAClearError) {
  TempDir dir;
  CommandResult bad = RunCommand({BinaryPath("flowgate-gateway"), "--data-dir", dir.Sub("db"),
                                  "--agents-plaintext", "--metrics", "localhost"});
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  EXPECT_NE(bad.err.find("--metrics address \"localhost\" is invalid"), std::string::npos)
      << bad.err;

  CommandResult agent_bad = RunCommand({BinaryPath("flowgate-agent"), "-r", "x.pcap", "--json-out",
                                        "-", "--metrics", "1.2.3.4:99999"});
  EXPECT_EQ(agent_bad.exit_code, 2) << agent_bad.err;
  EXPECT_NE(agent_bad.err.find("--metrics address"), std::string::npos) << agent_bad.err;

  // A port somebody else holds: the gateway says which address and exits; it opens nothing.
  const int holder = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(holder, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(holder, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::listen(holder, 1), 0);
  socklen_t length = sizeof address;
  ASSERT_EQ(::getsockname(holder, reinterpret_cast<sockaddr*>(&address), &length), 0);
  const std::string busy = "127.0.0.1:" + std::to_string(ntohs(address.sin_port));
  CommandResult taken = RunCommand({BinaryPath("flowgate-gateway"), "--data-dir", dir.Sub("db"),
                                    "--agents-plaintext", "--agents-listen", "tcp://127.0.0.1:*",
                                    "--json-socket", dir.Sub("gw.sock"), "--metrics", busy});
  ::close(holder);
  EXPECT_EQ(taken.exit_code, 1) << taken.err;
  EXPECT_NE(taken.err.find("cannot serve metrics on " + busy), std::string::npos) << taken.err;
}

}  // namespace
}  // namespace flowgate::testing
