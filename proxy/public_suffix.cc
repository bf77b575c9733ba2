// proxy/public_suffix.cc: see public_suffix.h.
#include "proxy/public_suffix.h"

#include <libpsl.h>

#include <memory>

#include "protocol/escape.h"

namespace mxscreen::proxy {
namespace {

struct PslFree {
  void operator()(psl_ctx_t* ctx) const { psl_free(ctx); }
};

// Loaded on first use (a function-local static: thread-safe), read-only afterwards, which
// libpsl allows from several threads.
const psl_ctx_t* list() {
  static const std::unique_ptr<psl_ctx_t, PslFree> ctx(psl_latest(nullptr));
  return ctx ? ctx.get() : psl_builtin();
}

}  // namespace

std::string registrable_domain(std::string_view name) {
  std::string lower = protocol::ascii_lower(name);
  while (!lower.empty() && lower.back() == '.') lower.pop_back();
  const psl_ctx_t* ctx = list();
  if (lower.empty() || !ctx) return "";
  const char* domain = psl_registrable_domain(ctx, lower.c_str());
  return domain ? std::string(domain) : std::string();
}

}  // namespace mxscreen::proxy
