"""The seed project's own test program, run on clisight: set up the complete observability stack,
walk a user through three steps, and print the comprehensive report.

    python examples/seed_stack.py

Records go to the configured store (CLISIGHT_STORE, or the default file in your data directory).
SEED_DASHBOARD_PORT sets the web dashboard's port (default 8080, as in the seed; 0 turns it off);
it is served only while the program runs, and only with the server extra installed.
"""

from __future__ import annotations

import asyncio
import os

import clisight


async def main() -> None:
    port = int(os.environ.get("SEED_DASHBOARD_PORT", "8080"))
    config = {
        "log_level": "INFO",
        "metrics_enabled": True,
        "tracing_enabled": True,
        "dashboard_port": port or None,
    }
    stack = clisight.ObservabilityStack(config)
    await stack.setup_observability()

    await stack.track_user_journey("user_login")
    await stack.track_user_journey("send_message")
    await stack.track_user_journey("view_sessions")

    report = stack.generate_comprehensive_report()
    print(report)
    stack.close()


if __name__ == "__main__":
    asyncio.run(main())
