#!/usr/bin/python3
"""Loads an `sgtctl report --html` page in headless Chromium over the DevTools protocol.

Used by report_html_test.sh. Records every console message, uncaught exception, log entry and
network request of the page, evaluates `--probe` (a JavaScript expression returning JSON) in it,
writes a screenshot of the top of the page and one of the whole page, and prints one JSON object:
{"console_errors": [...], "requests": [...], "probe": ..., "script_ran": bool}.

  report_html_browser.py PAGE.html --out DIR [--probe-file F.js] [--scripts-off]

Needs Debian's chromium and python3-websocket (scripts/install-deps). Waits on conditions (the
DevTools port file, the load event), each with a deadline that turns a hang into a failure.
"""
import argparse
import base64
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import websocket  # Debian: python3-websocket


class DevTools:
    def __init__(self, url):
        self.ws = websocket.create_connection(url, timeout=60, suppress_origin=True)
        self.next_id = 0
        self.events = []

    def call(self, method, session=None, **params):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        self.ws.send(json.dumps(message))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def wait_event(self, method, session, deadline_s=60):
        deadline = time.time() + deadline_s
        seen = 0
        while time.time() < deadline:
            for event in self.events[seen:]:
                if event["method"] == method and event.get("sessionId") == session:
                    return event
            seen = len(self.events)
            self.ws.settimeout(max(0.1, deadline - time.time()))
            reply = json.loads(self.ws.recv())
            if "method" in reply:
                self.events.append(reply)
        raise TimeoutError(f"no {method} in {deadline_s} s")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("page")
    parser.add_argument("--out", required=True)
    parser.add_argument("--probe-file")
    parser.add_argument("--scripts-off", action="store_true")
    args = parser.parse_args()
    page_url = pathlib.Path(args.page).resolve().as_uri()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    profile = tempfile.mkdtemp(prefix="sgt-chromium-")
    chromium = subprocess.Popen(
        ["chromium", "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
         "--no-default-browser-check", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--remote-debugging-port=0",
         f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=open(out / "chromium.log", "w"))
    try:
        port_file = pathlib.Path(profile) / "DevToolsActivePort"
        deadline = time.time() + 60
        while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
            if chromium.poll() is not None:
                sys.exit(f"chromium exited {chromium.returncode}: see {out / 'chromium.log'}")
            if time.time() > deadline:
                sys.exit("chromium did not open its DevTools port in 60 s")
            time.sleep(0.05)
        port, path = port_file.read_text().splitlines()[:2]
        tools = DevTools(f"ws://127.0.0.1:{port}{path}")

        target = tools.call("Target.createTarget", url="about:blank")["targetId"]
        session = tools.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            tools.call(f"{domain}.enable", session)
        tools.call("Emulation.setDeviceMetricsOverride", session, width=1280, height=1400,
                   deviceScaleFactor=1, mobile=False)
        if args.scripts_off:
            tools.call("Emulation.setScriptExecutionDisabled", session, value=True)
        tools.call("Page.navigate", session, url=page_url)
        tools.wait_event("Page.loadEventFired", session)

        probe = None
        if args.probe_file:
            expression = pathlib.Path(args.probe_file).read_text()
            result = tools.call("Runtime.evaluate", session, expression=expression,
                                returnByValue=True)
            if "exceptionDetails" in result:
                sys.exit(f"the probe threw: {result['exceptionDetails']}")
            probe = json.loads(result["result"]["value"])
        script_ran = tools.call(
            "Runtime.evaluate", session,
            expression="document.documentElement.getAttribute('data-script')",
            returnByValue=True)["result"].get("value") == "ran"

        shot = tools.call("Page.captureScreenshot", session, format="png")
        (out / "report-top.png").write_bytes(base64.b64decode(shot["data"]))
        metrics = tools.call("Page.getLayoutMetrics", session)["cssContentSize"]
        shot = tools.call("Page.captureScreenshot", session, format="png",
                          captureBeyondViewport=True,
                          clip={"x": 0, "y": 0, "width": metrics["width"],
                                "height": metrics["height"], "scale": 1})
        (out / "report-full.png").write_bytes(base64.b64decode(shot["data"]))

        errors, requests = [], []
        for event in tools.events:
            if event.get("sessionId") != session:
                continue
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                errors.append(json.dumps(params.get("args")))
            elif method == "Runtime.exceptionThrown":
                errors.append(json.dumps(params.get("exceptionDetails")))
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                errors.append(params["entry"].get("text", ""))
            elif method == "Network.requestWillBeSent":
                url = params["request"]["url"]
                if url != page_url and not url.startswith("data:"):
                    requests.append(url)
        print(json.dumps({"console_errors": errors, "requests": requests, "probe": probe,
                          "script_ran": script_ran}))
    finally:
        chromium.terminate()
        try:
            chromium.wait(timeout=20)
        except subprocess.TimeoutExpired:
            chromium.kill()
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main()
