"""`make demo`: the demo shop's data (products, customers, agents, a moving order) in the
configured database, for the distributed mode; `make run` seeds the same at every start."""
from __future__ import annotations

from demo_data import seed_all
from services import Services
from settings import Settings


def main() -> None:
    settings = Settings.from_env()
    services = Services.build(settings)
    with services.session() as session:
        seed_all(session)
    print(f"demo data loaded into {settings.database_url.rsplit('@', 1)[-1]}: open /shop/, "
          "/chat/console and /shop/admin")


if __name__ == "__main__":
    main()
