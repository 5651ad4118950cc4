"""The jobs :class:`trainer.Trainer` composes, one module each: precision checks and the AMP step
(:mod:`training.precision`), ``--skip-bad-rows`` accounting (:mod:`training.bad_rows`), FSDP2 sharding
(:mod:`training.fsdp`), the EMA options (:mod:`training.ema`) and checkpoint reading (:mod:`training.checkpoint`)."""
