// protocol/xclient.h: the Postfix XCLIENT command (XCLIENT_README) that tells the backend
// smtpd who the real client is when the PROXY protocol is not used. Encoding only.
#pragma once

#include <string>
#include <string_view>

#include "protocol/address.h"

namespace mxscreen::protocol {

struct XclientAttrs {
  Endpoint client;    // ADDR and PORT (PORT is left out when 0)
  std::string helo;   // HELO; empty -> [UNAVAILABLE]
  std::string name;   // NAME, the verified client hostname; empty -> [UNAVAILABLE]
  std::string proto;  // PROTO (SMTP or ESMTP); left out when empty
};

// "XCLIENT ADDR=192.0.2.1 PORT=4711 NAME=[UNAVAILABLE] HELO=mail.example PROTO=ESMTP\r\n".
// IPv6 addresses go as "IPV6:2001:db8::1"; values are xtext-encoded.
std::string encode_xclient(const XclientAttrs& attrs);

// RFC 3461 section 4 xtext: '+', '=' and bytes outside 33..126 become "+XX" (upper-case hex).
std::string xtext_encode(std::string_view value);

}  // namespace mxscreen::protocol
