#!/usr/bin/env python3
"""status_cdp.py - load a page in headless Chromium and read what it shows, over the
DevTools protocol (CDP) with only the standard library (a minimal WebSocket client).

  status_cdp.py CHROMIUM URL SECONDS UNTIL_FILE OUT.json [SCREENSHOT.png]

Starts CHROMIUM headless on a fresh profile with remote debugging on a free loopback
port, opens URL, lets it run SECONDS of real time (the page polls on its own), waits
for UNTIL_FILE to exist (at most 180 s; "-" for none) and 2.5 s more (two polls), then
writes OUT.json: {"updates": N, "tables": {id: [{data-k: text, ...} per row]},
"upstreams": {name: rows}, "header": {id: text}, "charts": {id: number of paths},
"errors": [console errors]} read from the live DOM, and a PNG screenshot (1280x900,
full page height) if asked, taken after the SECONDS (under the test's traffic). Exits non-zero on any failure. Chromium is ended by its PID.
"""
import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request


class WS:
    """Just enough of RFC 6455 for CDP: masked text frames out, unfragmented frames in."""

    def __init__(self, url):
        assert url.startswith("ws://")
        hostport, path = url[5:].split("/", 1)
        host, port = hostport.rsplit(":", 1)
        self.s = socket.create_connection((host, int(port)), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        self.s.sendall((f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
                        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                        "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.s.recv(4096)
            if not chunk:
                raise RuntimeError("websocket handshake: connection closed")
            head += chunk
        head, self.buf = head.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise RuntimeError("websocket handshake refused: %r" % head[:80])
        self.next_id = 0
        self.events = []

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.s.recv(65536)
            if not chunk:
                raise RuntimeError("websocket closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send(self, text):
        data = text.encode()
        n = len(data)
        head = bytes([0x81])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        self.s.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def recv(self):
        msg = b""
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            payload = self._read(n)
            msg += payload
            if b0 & 0x80:
                return json.loads(msg)

    def call(self, method, **params):
        self.next_id += 1
        self.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            m = self.recv()
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m["result"]
            self.events.append(m)


# What the page shows, read in the page: every row of every table, cells by data-k.
READ_DOM = r"""
(() => {
  const rows = t => [...t.tBodies[0].rows].map(tr => {
    const o = {_key: tr.dataset.key};
    for (const td of tr.cells) o[td.dataset.k] = td.textContent;
    return o;
  });
  const tables = {}, upstreams = {}, header = {}, charts = {};
  for (const id of ["listeners", "routes", "shards"]) tables[id] = rows(document.getElementById(id));
  for (const t of document.querySelectorAll("table[data-upstream]")) upstreams[t.dataset.upstream] = rows(t);
  for (const id of ["generation", "uptime", "connections", "rate", "nshards", "livetext"])
    header[id] = document.getElementById(id).textContent;
  for (const s of document.querySelectorAll("svg.chart")) charts[s.id] = s.querySelectorAll("path").length;
  return JSON.stringify({updates: Number(document.body.dataset.updates || 0), tables, upstreams,
    header, charts, title: document.title});
})()
"""


def main():
    chromium, url, seconds, until, out = (sys.argv[1], sys.argv[2], float(sys.argv[3]),
                                          sys.argv[4], sys.argv[5])
    shot = sys.argv[6] if len(sys.argv) > 6 else None
    profile = tempfile.mkdtemp(prefix="sp-chromium-")
    proc = subprocess.Popen(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--disable-extensions", "--hide-scrollbars",
         "--window-size=1280,900", "--remote-debugging-address=127.0.0.1",
         "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = os.path.join(profile, "DevToolsActivePort")
        deadline = time.monotonic() + 60
        while not os.path.exists(port_file) or not open(port_file).read().strip():
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("chromium did not open its debugging port")
            time.sleep(0.1)
        port = int(open(port_file).read().split()[0])
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10))
        page = [t for t in targets if t.get("type") == "page"][0]
        ws = WS(page["webSocketDebuggerUrl"])
        ws.call("Runtime.enable")
        ws.call("Page.enable")
        ws.call("Log.enable")
        ws.call("Page.navigate", url=url)
        time.sleep(seconds)
        if shot:
            metrics = ws.call("Page.getLayoutMetrics")
            height = int(metrics["cssContentSize"]["height"]) if "cssContentSize" in metrics else 900
            ws.call("Emulation.setDeviceMetricsOverride", width=1280, height=max(900, height),
                    deviceScaleFactor=1, mobile=False)
            time.sleep(0.5)
            img = ws.call("Page.captureScreenshot", format="png")
            with open(shot, "wb") as f:
                f.write(base64.b64decode(img["data"]))
        if until != "-":
            deadline = time.monotonic() + 180
            while not os.path.exists(until):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{until} never appeared")
                time.sleep(0.1)
            time.sleep(2.5)
        res = ws.call("Runtime.evaluate", expression=READ_DOM, returnByValue=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"reading the DOM: {res['exceptionDetails']}")
        dom = json.loads(res["result"]["value"])
        dom["errors"] = [e["params"] for e in ws.events
                         if e.get("method") == "Runtime.exceptionThrown" or
                         (e.get("method") == "Runtime.consoleAPICalled" and
                          e["params"].get("type") == "error") or
                         (e.get("method") == "Log.entryAdded" and
                          e["params"]["entry"].get("level") == "error")]
        with open(out, "w") as f:
            json.dump(dom, f, indent=1)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main()
