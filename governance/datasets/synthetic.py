"""A realistic raw table with personal data, generated with Faker (no data ships, none is fetched).

Used by `privet demo` and by the tests: names, emails, phones, payment cards, IBANs,
addresses, free-text notes with entities inside, age/zip/sex quasi-identifiers and a target
that depends on the non-identifying columns (so a model can learn it).
"""

from __future__ import annotations

import math
import random
from typing import Any

import pyarrow as pa
from faker import Faker

__all__ = ["customer_table", "PII_COLUMNS"]

PII_COLUMNS = ("name", "email", "phone", "card", "iban", "address")


def customer_table(rows: int, *, seed: int = 7, locale: str = "en_US") -> pa.Table:
    fake = Faker(locale)
    fake.seed_instance(seed)
    rng = random.Random(seed)
    cols: dict[str, list[Any]] = {k: [] for k in ("name", "email", "phone", "card", "iban", "address", "notes", "age", "zip", "sex", "tenure_months", "monthly_spend", "plan", "support_calls", "churned")}
    for _ in range(rows):
        name = fake.name()
        email = fake.email()
        phone = fake.numerify("(###) ###-####").replace("(0", "(2").replace("(1", "(3")
        age = rng.randint(18, 85)
        tenure = rng.randint(1, 120)
        spend = round(rng.uniform(10, 250), 2)
        plan = rng.choice(["basic", "plus", "premium"])
        calls = rng.randint(0, 9)
        score = -1.2 + 0.35 * calls - 0.02 * tenure + 0.004 * spend + (0.6 if plan == "basic" else -0.3) - 0.01 * (age - 50)
        cols["name"].append(name)
        cols["email"].append(email)
        cols["phone"].append(phone)
        cols["card"].append(fake.credit_card_number(card_type="visa16"))
        cols["iban"].append(fake.iban())
        cols["address"].append(fake.street_address())
        cols["notes"].append(rng.choice([
            f"Customer called from {phone} about billing; follow up by {email}.",
            f"Asked to move payments to IBAN {cols['iban'][-1]}.",
            "Happy with the service, no action needed.",
            f"Reported issue with invoice; contact {email}.",
        ]))
        cols["age"].append(age)
        cols["zip"].append(fake.zipcode())
        cols["sex"].append(rng.choice(["F", "M"]))
        cols["tenure_months"].append(tenure)
        cols["monthly_spend"].append(spend)
        cols["plan"].append(plan)
        cols["support_calls"].append(calls)
        cols["churned"].append(int(rng.random() < 1 / (1 + math.exp(-score))))
    return pa.table(cols)
