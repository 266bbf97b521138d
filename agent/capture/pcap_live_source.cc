// PacketSource over a live interface, read with libpcap; and the interface facts (addresses,
// MAC) that flow orientation and agent_status need.
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <linux/if_packet.h>
#include <net/if.h>

#include <atomic>
#include <cstdio>
#include <cstring>

#include "capture/pcap_handle.h"
#include "flowgate/common/identity.h"

namespace flowgate::capture {
namespace {

class PcapLiveSource final : public PacketSource {
 public:
  PcapLiveSource(PcapHandle handle, std::string name)
      : handle_(std::move(handle)),
        name_(std::move(name)),
        link_type_(pcap_datalink(handle_.get())) {}

  Result<bool> Next(RawPacket* packet) override {
    if (interrupted_.load(std::memory_order_relaxed)) return false;
    const int rc = NextRecord(handle_.get(), packet, &counters_);
    if (rc == 1) return true;
    if (rc == 0 || rc == PCAP_ERROR_BREAK) return false;  // timeout, or Interrupt()
    // PCAP_ERROR: the interface went down or away; the caller reopens it.
    return Status::Unavailable("capture on '" + name_ + "' failed: " + pcap_geterr(handle_.get()));
  }

  bool live() const override { return true; }
  void Interrupt() override {
    interrupted_.store(true, std::memory_order_relaxed);
    pcap_breakloop(handle_.get());
  }
  void SetNonBlocking() override {
    char errbuf[PCAP_ERRBUF_SIZE] = {};
    pcap_setnonblock(handle_.get(), 1, errbuf);
    interrupted_.store(false, std::memory_order_relaxed);
  }
  int link_type() const override { return link_type_; }
  const std::string& name() const override { return name_; }
  CaptureCounters counters() const override {
    CaptureCounters counters = counters_;
    pcap_stat stats{};
    if (pcap_stats(handle_.get(), &stats) == 0)
      counters.kernel_dropped = stats.ps_drop + stats.ps_ifdrop;
    return counters;
  }

 private:
  PcapHandle handle_;
  const std::string name_;
  const int link_type_;
  CaptureCounters counters_;
  std::atomic<bool> interrupted_{false};
};

// Prefix length of a netmask.
int PrefixLength(const sockaddr* mask) {
  if (mask == nullptr) return -1;
  const uint8_t* bytes = nullptr;
  size_t length = 0;
  if (mask->sa_family == AF_INET) {
    bytes = reinterpret_cast<const uint8_t*>(&reinterpret_cast<const sockaddr_in*>(mask)->sin_addr);
    length = 4;
  } else if (mask->sa_family == AF_INET6) {
    bytes =
        reinterpret_cast<const uint8_t*>(&reinterpret_cast<const sockaddr_in6*>(mask)->sin6_addr);
    length = 16;
  } else {
    return -1;
  }
  int prefix = 0;
  for (size_t i = 0; i < length; ++i) prefix += __builtin_popcount(bytes[i]);
  return prefix;
}

struct IfaddrsFree {
  void operator()(ifaddrs* list) const { freeifaddrs(list); }
};

}  // namespace

Result<std::unique_ptr<PacketSource>> OpenLiveCapture(const std::string& name,
                                                      const CaptureOptions& options) {
  char errbuf[PCAP_ERRBUF_SIZE] = {};
  PcapHandle handle(pcap_create(name.c_str(), errbuf));
  if (handle == nullptr)
    return Status::InvalidArgument("cannot capture on '" + name + "': " + errbuf);
  pcap_set_snaplen(handle.get(), options.snaplen);
  pcap_set_promisc(handle.get(), options.promiscuous ? 1 : 0);
  pcap_set_timeout(handle.get(), options.poll_ms);
  pcap_set_buffer_size(handle.get(),
                       static_cast<int>(std::min<uint64_t>(options.buffer_bytes, 1u << 30)));
  const int rc = pcap_activate(handle.get());
  if (rc < 0) {
    const std::string detail = rc == PCAP_ERROR ? pcap_geterr(handle.get()) : pcap_statustostr(rc);
    const std::string message = "cannot capture on '" + name + "': " + detail;
    if (rc == PCAP_ERROR_NO_SUCH_DEVICE) return Status::NotFound(message);
    if (rc == PCAP_ERROR_IFACE_NOT_UP) return Status::Unavailable(message);
    if (rc == PCAP_ERROR_PERM_DENIED) return Status::InvalidArgument(message);
    return Status::IoError(message);
  }
  FLOWGATE_RETURN_IF_ERROR(ApplyBpf(handle.get(), options.bpf, "'" + name + "'"));
  return std::unique_ptr<PacketSource>(std::make_unique<PcapLiveSource>(std::move(handle), name));
}

std::vector<std::string> InterfaceNetworks(const std::string& name) {
  std::vector<std::string> networks;
  ifaddrs* raw = nullptr;
  if (getifaddrs(&raw) != 0) return networks;
  std::unique_ptr<ifaddrs, IfaddrsFree> list(raw);
  for (const ifaddrs* i = list.get(); i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr || name != i->ifa_name) continue;
    const int family = i->ifa_addr->sa_family;
    if (family != AF_INET && family != AF_INET6) continue;
    char text[INET6_ADDRSTRLEN] = {};
    const void* address =
        family == AF_INET
            ? static_cast<const void*>(&reinterpret_cast<const sockaddr_in*>(i->ifa_addr)->sin_addr)
            : static_cast<const void*>(
                  &reinterpret_cast<const sockaddr_in6*>(i->ifa_addr)->sin6_addr);
    if (inet_ntop(family, address, text, sizeof text) == nullptr) continue;
    const int prefix = PrefixLength(i->ifa_netmask);
    networks.push_back(std::string(text) + (prefix >= 0 ? "/" + std::to_string(prefix) : ""));
  }
  return networks;
}

std::string InterfaceMac(const std::string& name) {
  ifaddrs* raw = nullptr;
  if (getifaddrs(&raw) != 0) return {};
  std::unique_ptr<ifaddrs, IfaddrsFree> list(raw);
  for (const ifaddrs* i = list.get(); i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr || name != i->ifa_name || i->ifa_addr->sa_family != AF_PACKET)
      continue;
    const auto* link = reinterpret_cast<const sockaddr_ll*>(i->ifa_addr);
    if (link->sll_halen != 6) continue;
    std::string text;
    AssignHexLower(link->sll_addr, 6, ':', &text);
    return text;
  }
  return {};
}

}  // namespace flowgate::capture
