// proxy/public_suffix.h: the organisational (registrable) domain of a host name by the Public
// Suffix List, through Debian's libpsl and the list of the publicsuffix package
// (/usr/share/publicsuffix, psl_latest(): the newer of that file and libpsl's built-in copy),
// loaded once per process. "mail-1.example.co.uk" -> "example.co.uk"; a name that is itself a
// public suffix ("co.uk") or a single label has none (""). Names not under a listed suffix
// follow the list's default rule "*": "mail.good.test" -> "good.test".
#pragma once

#include <string>
#include <string_view>

namespace mxscreen::proxy {

std::string registrable_domain(std::string_view name);

}  // namespace mxscreen::proxy
