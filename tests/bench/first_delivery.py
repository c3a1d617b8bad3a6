"""Time from `createJob` to the target receiving the job's first webhook.

Runs against a Tickwork that is already up (`make run`, or `tickwork up`):
creates interval webhook jobs aimed at a local target one after another, waits
for each first POST, deletes the job, and prints the delays in milliseconds.

    .venv/bin/python -m tests.bench.first_delivery --api http://127.0.0.1:8000

`tickwork up` on loopback needs no token; any other API takes one with
``--token`` (default: TICKWORK_BOOTSTRAP_TOKEN).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import httpx

from tests.support.target import Target

CREATE = """
mutation ($input: CreateJobInput!) { createJob(input: $input) { ... on Job { id } } }
"""
DELETE = "mutation ($id: ID!) { deleteJob(id: $id) { __typename } }"


def first_delivery_ms(
    api: str, target: Target, n: int, headers: dict[str, str]
) -> float:
    started = time.monotonic()
    response = httpx.post(
        f"{api}/graphql",
        headers=headers,
        json={
            "query": CREATE,
            "variables": {
                "input": {
                    "name": f"first delivery {n}",
                    "schedule": {"intervalSeconds": 2},
                    "action": {"webhook": {"url": target.url(f"/ok/{n}")}},
                }
            },
        },
    )
    job_id = response.json()["data"]["createJob"]["id"]
    deadline = started + 5
    while not any(r.path == f"/ok/{n}" for r in target.requests):
        if time.monotonic() > deadline:
            raise SystemExit(f"job {job_id} delivered nothing within 5 s")
        time.sleep(0.001)
    elapsed = (time.monotonic() - started) * 1000
    httpx.post(
        f"{api}/graphql",
        json={"query": DELETE, "variables": {"id": job_id}},
        headers=headers,
    )
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--api", default="http://127.0.0.1:8000")
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--token", default=os.environ.get("TICKWORK_BOOTSTRAP_TOKEN"))
    args = parser.parse_args()
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    with Target() as target:
        delays = [
            first_delivery_ms(args.api, target, n, headers) for n in range(args.jobs)
        ]
    print(
        f"createJob -> first POST over {len(delays)} jobs: "
        f"median {statistics.median(delays):.0f} ms, max {max(delays):.0f} ms"
    )


if __name__ == "__main__":
    main()
