"""Stripe sync (SPEC §9): usage to Stripe meters, invoices to Stripe, exactly once,
retried and reconciled. Sits above invoicing, meters and customers; nothing below it
imports it (the job registry composes it)."""
