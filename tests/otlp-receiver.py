"""A stand-in OTLP/HTTP receiver for tests/otlp.rs (no OpenTelemetry
collector is packaged for Debian): it decodes each POST with the official
protobuf definitions (PyPI's opentelemetry-proto) and prints it as one
JSON line, {"path": ..., "body": <the request as OTLP/JSON>}. A body that
does not decode is answered 400 and printed as {"path": ..., "error": ...}.

    python3 tests/otlp-receiver.py PORT    # 127.0.0.1:PORT; 0: any, printed first
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest, ExportLogsServiceResponse)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest, ExportMetricsServiceResponse)

KINDS = {
    "/v1/logs": (ExportLogsServiceRequest, ExportLogsServiceResponse),
    "/v1/metrics": (ExportMetricsServiceRequest, ExportMetricsServiceResponse),
}


def say(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        kind = KINDS.get(self.path)
        if kind is None or self.headers.get("Content-Type") != "application/x-protobuf":
            say({"path": self.path, "error": "unexpected path or type %s" % self.headers.get("Content-Type")})
            self.send_response(404)
            self.end_headers()
            return
        req = kind[0]()
        try:
            req.ParseFromString(body)
        except Exception as e:  # noqa: BLE001 - any decoding error is the answer
            say({"path": self.path, "error": str(e)})
            self.send_response(400)
            self.end_headers()
            return
        say({"path": self.path, "body": MessageToDict(req)})
        out = kind[1]().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
say({"port": server.server_address[1]})
server.serve_forever()
