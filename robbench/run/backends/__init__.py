"""Where units execute: in this process, in a local worker pool, or as Slurm jobs (submitit)."""
