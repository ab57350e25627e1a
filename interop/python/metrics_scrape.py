"""A shop process's `/metrics` as Prometheus's own client library reads it: fetched over HTTP and parsed with
`prometheus_client`'s strict OpenMetrics parser (the content type the shop serves), which refuses a malformed line,
a family declared twice, a counter without `_total`, a histogram without `+Inf`, or a missing `# EOF`.

    python metrics_scrape.py http://127.0.0.1:<port>/metrics

Prints one JSON line saying what was parsed, then one per sample (`name`, `labels`, `value`); exits non-zero, saying
why, when the answer is not OpenMetrics text.
"""

import json
import sys
import urllib.request

from prometheus_client.openmetrics.parser import text_string_to_metric_families

OPENMETRICS = "application/openmetrics-text"


def main(url: str) -> None:
    with urllib.request.urlopen(url, timeout=30) as response:
        content_type = response.headers.get("Content-Type", "")
        body = response.read().decode("utf-8")
    if not content_type.startswith(OPENMETRICS):
        sys.exit(f"{url} answered {content_type!r}, not {OPENMETRICS}")
    families = list(text_string_to_metric_families(body))
    print(json.dumps({"content_type": content_type, "families": len(families)}))
    for family in families:
        for sample in family.samples:
            print(json.dumps({"name": sample.name, "type": family.type, "labels": sample.labels, "value": sample.value}))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
