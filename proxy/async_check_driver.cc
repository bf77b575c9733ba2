// proxy/async_check_driver.cc: the DNS vocabulary of checks/ and of the resolver, mapped.

#include "proxy/async_check_driver.h"

namespace mxscreen::proxy {

DnsType to_dns_type(checks::DnsRecordType type) {
  switch (type) {
    case checks::DnsRecordType::kA:
      return DnsType::kA;
    case checks::DnsRecordType::kAAAA:
      return DnsType::kAAAA;
    case checks::DnsRecordType::kPTR:
      return DnsType::kPTR;
    case checks::DnsRecordType::kMX:
      return DnsType::kMX;
    case checks::DnsRecordType::kTXT:
      return DnsType::kTXT;
  }
  return DnsType::kA;
}

checks::DnsReply to_check_reply(const DnsAnswer& answer) {
  checks::DnsReply reply;
  switch (answer.status) {
    case DnsStatus::kOk:
      reply.status = checks::DnsReplyStatus::kOk;
      break;
    case DnsStatus::kNxDomain:
      reply.status = checks::DnsReplyStatus::kNxDomain;
      break;
    case DnsStatus::kNoData:
      reply.status = checks::DnsReplyStatus::kNoData;
      break;
    case DnsStatus::kTempFail:
      reply.status = checks::DnsReplyStatus::kTempFail;
      break;
  }
  reply.values = answer.values;
  return reply;
}

}  // namespace mxscreen::proxy
