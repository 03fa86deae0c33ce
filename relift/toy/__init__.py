"""The digit-task toy of `make demo`, `make bench` and the tests: data (`digit_tasks`), a tiny Qwen2
(`tiny_model`) and the runs that train on them (`runs`). Not part of the trainer's API."""
