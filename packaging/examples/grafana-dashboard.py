#!/usr/bin/env python3
"""Writes packaging/examples/grafana-dashboard.json: tcpstate's Grafana
dashboard, from the metrics of /metrics (and the same names over OTLP).
tests/fleet.rs runs every panel's query against a real Prometheus
scraping a real tcpstate.

    packaging/examples/grafana-dashboard.py > packaging/examples/grafana-dashboard.json
"""
import json

SEL = 'instance=~"$instance"'
# Failures nothing recovered: the outages (see docs/verdicts.md).
FAILED = 'instance=~"$instance",outcome!="recovered"'
PANELS = [
    ("Failures by reason", "timeseries",
     f'sum by (reason) (rate(tcpstate_connect_failures_total{{{FAILED}}}[$__rate_interval]))', "{{reason}}"),
    ("Failures by unit or container", "timeseries",
     f'topk(10, sum by (unit) (rate(tcpstate_connect_failures_total{{{FAILED}}}[$__rate_interval])))', "{{unit}}"),
    ("Top failing destinations", "table",
     f'topk(10, sum by (destination, reason) (increase(tcpstate_connect_failures_total{{{FAILED}}}[$__range])))', ""),
    ("Failures by node", "timeseries",
     f'sum by (instance) (rate(tcpstate_connect_failures_total{{{FAILED}}}[$__rate_interval]))', "{{instance}}"),
    ("Degradation: failures the applications recovered from (broken paths)", "timeseries",
     f'sum by (destination, reason) (rate(tcpstate_connect_failures_total{{{SEL},outcome="recovered"}}[$__rate_interval]))', "{{destination}} {{reason}}"),
    ("Degradation: attempts hanging past --slow-after", "timeseries",
     f'sum by (destination) (rate(tcpstate_connect_slow_total{{{SEL}}}[$__rate_interval]))', "{{destination}}"),
    ("Broken: established connections reset or timed out, by reason", "timeseries",
     f'sum by (reason) (rate(tcpstate_connections_broken_total{{{SEL}}}[$__rate_interval]))', "{{reason}}"),
    ("DNS failures: lookups that did not resolve, by reason", "timeseries",
     f'sum by (reason) (rate(tcpstate_resolve_failures_total{{{SEL}}}[$__rate_interval]))', "{{reason}}"),
    ("Time to failure (p90) by reason", "timeseries",
     f'histogram_quantile(0.9, sum by (le, reason) (rate(tcpstate_connect_failure_duration_seconds_bucket{{{SEL}}}[$__rate_interval])))', "{{reason}}"),
    ("Alerts dropped per sink", "timeseries",
     f'sum by (sink) (rate(tcpstate_alerts_dropped_total{{{SEL}}}[$__rate_interval]))', "{{sink}}"),
    ("Events lost by the kernel (ring buffer full)", "timeseries",
     f'sum by (instance) (rate(tcpstate_ringbuf_lost_events_total{{{SEL}}}[$__rate_interval]))', "{{instance}}"),
    ("Attempts pending", "timeseries",
     f'sum by (instance) (tcpstate_attempts_pending{{{SEL}}})', "{{instance}}"),
    ("DNS answers read", "timeseries",
     f'sum by (instance) (rate(tcpstate_dns_answers_total{{{SEL}}}[$__rate_interval]))', "{{instance}}"),
    ("Agents up (version)", "table",
     f'tcpstate_build_info{{{SEL}}} * on (instance) group_left up{{{SEL}}}', ""),
]


def panel(i, title, kind, expr, legend):
    return {
        "id": i + 1,
        "title": title,
        "type": kind,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 12, "x": (i % 2) * 12, "y": (i // 2) * 8},
        "targets": [{"refId": "A", "expr": expr, "legendFormat": legend,
                     "instant": kind == "table", "range": kind != "table"}],
    }


dash = {
    "title": "tcpstate",
    "uid": "tcpstate",
    "schemaVersion": 39,
    "time": {"from": "now-6h", "to": "now"},
    "refresh": "30s",
    "tags": ["tcpstate", "network"],
    "templating": {"list": [
        {"name": "datasource", "type": "datasource", "query": "prometheus"},
        {"name": "instance", "type": "query", "includeAll": True, "multi": True,
         "allValue": ".*", "datasource": {"type": "prometheus", "uid": "${datasource}"},
         "query": "label_values(tcpstate_build_info, instance)", "refresh": 2},
    ]},
    "panels": [panel(i, *p) for i, p in enumerate(PANELS)],
}
print(json.dumps(dash, indent=2))
