#include "flowgate/common/thread_name.h"

#include <pthread.h>

#include <string>

namespace flowgate {

void NameThisThread(std::string_view name) {
  constexpr size_t kMaxNameBytes = 15;  // the kernel's limit, without the terminator
  const std::string truncated(name.substr(0, kMaxNameBytes));
  (void)pthread_setname_np(pthread_self(), truncated.c_str());
}

}  // namespace flowgate
