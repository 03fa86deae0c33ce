"""The backends named in `trainer.logger`, checked before Ray starts.

veRL builds its logger (`Tracking`, verl/utils/tracking.py) at the start of `fit()`, after the workers
have loaded the model into FSDP and vLLM: a backend that cannot start there (not installed, W&B without
a key, which raises "No API key configured") ends the run minutes in. Here each backend is imported as
`Tracking` would import it, and W&B is asked, as its `wandb.init` would ask and without a network call,
whether it has credentials or runs offline. No Ray; veRL only for its list of backends.

The check reads this process's environment and home folder. On a multi-node cluster the trainer process
may run on another node, whose environment is the one `ray start` had there.
"""

from __future__ import annotations

import importlib
import os

# (module, pip package) that veRL's Tracking imports for a backend; "console" and "file" need nothing more.
IMPORTS = {
    "wandb": ("wandb", "wandb"),
    "tracking": ("wandb", "wandb"),  # veRL's deprecated name for wandb
    "trackio": ("trackio", "trackio"),
    "mlflow": ("mlflow", "mlflow"),
    "swanlab": ("swanlab", "swanlab"),
    "vemlp_wandb": ("volcengine_ml_platform", "volcengine-ml-platform"),
    "tensorboard": ("torch.utils.tensorboard", "tensorboard"),
    "clearml": ("clearml", "clearml"),
    "rl_insight": ("rl_insight", "rl-insight"),
}
# Environment variables Tracking reads with os.environ[...] (a KeyError at fit()).
REQUIRED_ENV = {"vemlp_wandb": ("VOLC_ACCESS_KEY_ID", "VOLC_SECRET_ACCESS_KEY", "MLP_TRACKING_REGION")}


def logger_problems(backends: str | list[str]) -> list[str]:
    """One line per backend of `trainer.logger` that would fail when veRL's trainer starts logging."""
    from verl.utils.tracking import Tracking

    problems = []
    for backend in [backends] if isinstance(backends, str) else list(backends):
        if backend not in Tracking.supported_backend and backend != "tracking":
            problems.append(f"trainer.logger has {backend}, which veRL does not know: use some of "
                            f"{','.join(Tracking.supported_backend)}")
            continue
        if backend in IMPORTS:
            module, package = IMPORTS[backend]
            try:
                importlib.import_module(module)
            except Exception as error:  # an ImportError, or a broken install failing on import
                problems.append(f"trainer.logger has {backend}, but `import {module}` fails ({error}): "
                                f"pip install {package}, or remove {backend} from trainer.logger")
                continue
        missing = [name for name in REQUIRED_ENV.get(backend, ()) if not os.environ.get(name)]
        if missing:
            problems.append(f"trainer.logger has {backend}, which needs {', '.join(missing)}: set them, or remove "
                            f"{backend} from trainer.logger")
        if backend in ("wandb", "tracking"):
            problems += [f"trainer.logger has {backend}, but {problem}" for problem in [wandb_problem()] if problem]
    return problems


def wandb_problem() -> str | None:
    """Why `wandb.init` would fail to log in, or None: W&B's own settings (WANDB_MODE, `wandb offline`)
    and credential lookup (WANDB_API_KEY, WANDB_IDENTITY_TOKEN_FILE, the netrc entry `wandb login` writes,
    the api_key setting) with prompting and verification off, as wandb.init's login runs them
    (wandb/sdk/wandb_init.py, maybe_login; wandb/sdk/lib/wbauth/authenticate.py). wandb 0.31 has no
    public call that does this without a network request (wandb.login asks the server for the user)."""
    from wandb.errors import AuthenticationError
    from wandb.sdk import wandb_setup
    from wandb.sdk.lib import wbauth

    try:
        settings = wandb_setup.singleton().settings
    except Exception as error:  # e.g. a WANDB_MODE that is not a mode
        return f"W&B's settings do not load: {str(error).splitlines()[0]} (WANDB_MODE: online, offline or disabled)"
    if settings.mode in ("offline", "dryrun", "disabled"):
        return None
    try:
        auth = wbauth.authenticate_session(host=settings.base_url, source="relift", prompt=False,
                                           update_session=False)
    except AuthenticationError as error:
        return f"W&B refuses its credentials: {error}"
    if auth is None:
        return (
            f"W&B has no API key for {settings.base_url} (none in WANDB_API_KEY, ~/.netrc or its settings) and "
            f"WANDB_MODE is {settings.mode}: export WANDB_API_KEY=..., run `wandb login`, set WANDB_MODE=offline "
            "(upload later with `wandb sync`), or log to trainer.logger=[console,tensorboard]"
        )
    return None
