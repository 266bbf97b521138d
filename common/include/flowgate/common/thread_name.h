// Names for long-lived threads, as `top -H`, `ps -L`, perf and gdb show them: a gateway
// or agent runs a dozen threads, and telling the commit thread from a RocksDB flush is
// the first question when one of them is busy or stalls.
#pragma once

#include <string_view>

namespace flowgate {

// Names the calling thread; Linux keeps the first 15 bytes. Best effort: a thread that
// cannot be named runs on unnamed.
void NameThisThread(std::string_view name);

}  // namespace flowgate
