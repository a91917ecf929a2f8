#!/usr/bin/env python3
"""A streaming client for tests/serve/test_sse.sh: starts a long legacy
completion stream (n=4, 230 tokens, end tokens banned), prints
"started STATUS" once the first line of the body has arrived, then reads to
the end and writes the (de-chunked) body to OUT; a connection cut
mid-chunk is reported on stdout and what arrived is still written.
Usage: sse_client.py BASE_URL KEY OUT"""
import http.client
import json
import sys
import urllib.parse

base, key, out = sys.argv[1:4]
u = urllib.parse.urlparse(base)
c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
c.request("POST", "/v1/completions",
          json.dumps({"model": "cgpt-mini", "prompt": "Debian", "max_tokens": 230, "n": 4, "stream": True,
                      "logit_bias": {"8188": -100, "8190": -100}}),
          {"Authorization": "Bearer " + key, "Content-Type": "application/json"})
r = c.getresponse()
got = r.readline()
print("started", r.status, flush=True)
try:
    while True:
        d = r.read1(65536)
        if not d:
            break
        got += d
except Exception as e:  # noqa: BLE001 - a connection cut mid-chunk
    print("cut:", repr(e), flush=True)
open(out, "wb").write(got)
