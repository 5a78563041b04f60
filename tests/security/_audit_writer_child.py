"""Child process for the crash test: audits records and prints each acknowledged seq."""

from __future__ import annotations

import asyncio
import sys

from luodi.config.security import SecuritySettings
from luodi.config.storage import StorageSettings
from luodi.security import AuditEvent, Gateway


async def main(url: str) -> None:
    gateway = await Gateway.create(SecuritySettings(), StorageSettings(database_url=url))
    print("READY", flush=True)

    async def worker(n: int) -> None:
        i = 0
        while True:
            i += 1
            await gateway.audit(
                AuditEvent(endpoint="/v1/chat/completions", user=f"w{n}", prompt_tokens=i)
            )
            print(f"ACK w{n} {i}", flush=True)  # acknowledged: must survive the kill

    await asyncio.gather(*(worker(n) for n in range(8)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
