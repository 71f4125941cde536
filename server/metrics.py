"""What operators can watch: Prometheus metrics of the scheduler and the event loop.

Metrics live in prometheus_client's default registry, whether or not they are served: the
server serves them on `ATELIER_METRICS_LISTEN` when it is set. This module depends on nothing
of Atelier, so every layer may count what it sees.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_SECONDS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600)

QUEUE_DEPTH = Gauge("atelier_queue_depth", "Jobs queued, by model, across every replica.", ["model"])
JOBS_IN_FLIGHT = Gauge("atelier_jobs_in_flight", "Jobs running, by model, across every replica.", ["model"])
JOBS_RUNNING = Gauge("atelier_jobs_running_here", "Jobs this process runs now, by model.", ["model"])
COOLDOWN_SECONDS = Gauge(
    "atelier_model_cooldown_seconds", "Seconds left of the model's cooldown after a 429 (0: none).", ["model"]
)
QUEUE_SECONDS = Histogram(
    "atelier_job_queue_seconds",
    "How long jobs waited in the queue before an attempt.",
    ["model"],
    buckets=_SECONDS,
)
RUN_SECONDS = Histogram(
    "atelier_job_run_seconds",
    "How long an attempt of a job ran in this process.",
    ["model"],
    buckets=_SECONDS,
)
MODEL_REFUSALS = Counter("atelier_model_refusals", "Requests the model refused with 429.", ["model"])
MODEL_ERRORS = Counter("atelier_model_errors", "Requests the model failed (5xx, timeouts).", ["model"])
WEBHOOK_ATTEMPTS = Counter(
    "atelier_webhook_attempts",
    "Webhook delivery attempts this process made, by outcome: delivered, retry (to be tried again), "
    "failed (given up).",
    ["outcome"],
)
LOOP_LAG_SECONDS = Histogram(
    "atelier_event_loop_lag_seconds",
    "How late the event loop ran a timer: the time the loop was busy with something else.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
