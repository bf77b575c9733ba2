#!/usr/bin/env python3
"""Turns the RFC 7208 test suite (pyspf's test/rfc7208-tests.yml, YAML) into
rfc7208-tests.tsv, the line format tests/checks/spf_suite_test.cc reads (no YAML or JSON
library in the C++ build). The zone data is resolved here the way pyspf's and Mail::SPF's
suite drivers read it:

- an SPF-type record also answers as TXT unless the name has TXT records of its own or says
  `TXT: NONE` (RFC 7208 dropped the SPF type; we query TXT only);
- a TXT record given as a list of strings is one record whose strings are joined;
- `TIMEOUT` makes every query of that name time out unless the name has records of the
  queried type; a name in the zone without records of the type is NODATA, any other name
  NXDOMAIN (decided by the C++ fake resolver from `name`, `timeout` and record lines).

Usage: python3 convert_rfc7208.py rfc7208-tests.yml > rfc7208-tests.tsv
"""
import sys

import yaml


def to_bytes(value):
    text = str(value)
    try:
        return text.encode("latin-1")  # "\x80"-style YAML escapes are bytes in the suite
    except UnicodeEncodeError:
        return text.encode("utf-8")


def esc(value):
    out = []
    for b in to_bytes(value):
        c = chr(b)
        if c == "\\":
            out.append("\\\\")
        elif 0x20 <= b < 0x7F and c != "\t":
            out.append(c)
        else:
            out.append("\\x%02X" % b)
    return "".join(out)


def main():
    docs = list(yaml.safe_load_all(open(sys.argv[1], "rb")))
    print("# The RFC 7208 test suite (openspf.org release 2014.04, as kept in the pyspf")
    print("# repository, sdgathman/pyspf, file test/rfc7208-tests.yml), converted by")
    print("# convert_rfc7208.py. See README.md beside this file for origin and licence.")
    print("# scenario<TAB>description | name<TAB>domain | timeout<TAB>domain |")
    print("# record<TAB>domain<TAB>A|AAAA|MX|PTR|TXT<TAB>value |")
    print("# test<TAB>name<TAB>spec<TAB>helo<TAB>host<TAB>mailfrom<TAB>results,<TAB>explanation")
    print("# Strings are C-escaped (\\\\, \\xHH).")
    for doc in docs:
        print("scenario\t%s" % esc(doc["description"]))
        for domain, records in (doc.get("zonedata") or {}).items():
            print("name\t%s" % esc(domain))
            txt, spf, txt_none = [], [], False
            for record in records:
                if record == "TIMEOUT":
                    print("timeout\t%s" % esc(domain))
                    continue
                for rtype, value in record.items():
                    if rtype in ("TXT", "SPF"):
                        joined = "".join(str(v) for v in value) if isinstance(value, list) else value
                        if rtype == "TXT" and value == "NONE":
                            txt_none = True
                        else:
                            (txt if rtype == "TXT" else spf).append(joined)
                    elif rtype == "MX":
                        preference, host = value
                        print("record\t%s\tMX\t%d %s" % (esc(domain), preference, esc(host)))
                    else:
                        print("record\t%s\t%s\t%s" % (esc(domain), rtype, esc(value)))
            answers = txt if (txt or txt_none) else spf
            for value in answers:
                print("record\t%s\tTXT\t%s" % (esc(domain), esc(value)))
        for name, test in doc["tests"].items():
            results = test["result"]
            if not isinstance(results, list):
                results = [results]
            print("test\t%s\t%s\t%s\t%s\t%s\t%s\t%s" % (
                esc(name), esc(test.get("spec", "")), esc(test["helo"]), esc(test["host"]),
                esc(test["mailfrom"]), ",".join(results), esc(test.get("explanation", ""))))


if __name__ == "__main__":
    main()
