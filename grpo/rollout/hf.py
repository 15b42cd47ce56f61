"""The ``hf`` engine: batched ``transformers`` generate on the policy itself.

Colocated and sharing the trainer's module, so a weight sync is free: the engine always
samples from the current policy. It is the fallback when vLLM is not installed and the
reference the other engines are tested against. With ``private_copy`` it samples from its
own copy of the weights instead (``update_weights`` copies the new ones in), which overlapped
rollouts need: the trainer updates the policy while the next batch is being sampled.
"""
from __future__ import annotations

import copy
from typing import Iterable

import torch
from transformers import DynamicCache, StoppingCriteria, StoppingCriteriaList

from .base import Completion, Group, SamplingParams, end_token_ids, finish_completion, first_stop


class HFEngine:
    def __init__(self, model, tokenizer, max_batch: int = 256, return_logprobs: bool = False,
                 synced_gpus: bool = False, private_copy: bool = False, share_prefill: bool = True):
        if private_copy:
            model = copy.deepcopy(model).requires_grad_(False)
        self.private_copy = private_copy
        self.model, self.tok = model, tokenizer
        self.synced_gpus = synced_gpus
        self.max_batch = max_batch          # sequences per generate call (memory bound)
        self.return_logprobs = return_logprobs
        self.weight_version = 0
        self.record_routing = False         # MoE routing replay: attach Completion.routing
        self.share_prefill = share_prefill  # run each prompt's prefill once for its G samples

    @torch.no_grad()
    def generate(self, prompts: list[str], sampling: SamplingParams) -> list[Group]:
        groups = []
        per_call = max(1, self.max_batch // sampling.n)
        for i in range(0, len(prompts), per_call):
            groups += self._generate(prompts[i:i + per_call], sampling)
        return groups

    def _generate(self, prompts: list[str], sp: SamplingParams) -> list[Group]:
        tok = self.tok
        tok.padding_side = "left"           # all prompts end at the same column
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=True).to(self.model.device)
        end_ids = end_token_ids(tok, getattr(self.model, "generation_config", None), sp.end_of_turn, sp.stop)
        from ..moe.replay import start_recording
        rec = start_recording(self.model) if self.record_routing else None
        try:
            new, logps = self._sample(enc, sp, end_ids, sp.n, may_share=rec is None)
        finally:
            if rec is not None:
                rec.stop()
        groups = []
        for b, prompt in enumerate(prompts):
            prompt_ids = enc.input_ids[b][enc.attention_mask[b].bool()].tolist()
            comps = [self._completion(new[b * sp.n + g], None if logps is None else logps[b * sp.n + g],
                                      sp, end_ids) for g in range(sp.n)]
            groups.append(Group(prompt, prompt_ids, comps))
        if rec is not None:                 # [prompt + completion, L, k] expert ids per sequence
            flat = [c for g in groups for c in g.completions]
            routing = rec.per_sequence(enc.attention_mask.repeat_interleave(sp.n, 0).cpu(),
                                       [len(c.token_ids) for c in flat])
            for c, r in zip(flat, routing):
                c.routing = r
        return groups

    @torch.no_grad()
    def generate_ids(self, ids: list[list[int]], sampling: SamplingParams) -> list[Completion]:
        """One completion of each token-id sequence (multi-turn rollouts continue an episode
        from exactly the ids it holds: prompt, sampled turns, observations; nothing is
        re-tokenized). ``sampling.n`` is ignored (1 per sequence)."""
        out = []
        for i in range(0, len(ids), self.max_batch):
            out += self._generate_ids(ids[i:i + self.max_batch], sampling)
        return out

    def _generate_ids(self, ids: list[list[int]], sp: SamplingParams) -> list[Completion]:
        if not ids or any(not x for x in ids):
            raise ValueError("generate_ids needs a non-empty token-id sequence per row")
        L = max(len(x) for x in ids)
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0
        input_ids = torch.full((len(ids), L), pad, dtype=torch.long)
        attn = torch.zeros((len(ids), L), dtype=torch.long)
        for i, x in enumerate(ids):          # left-padded, as the tokenizer pads prompts
            input_ids[i, L - len(x):] = torch.tensor(x, dtype=torch.long)
            attn[i, L - len(x):] = 1
        enc = {"input_ids": input_ids.to(self.model.device), "attention_mask": attn.to(self.model.device)}
        end_ids = end_token_ids(self.tok, getattr(self.model, "generation_config", None), sp.end_of_turn, sp.stop)
        new, logps = self._sample(_Enc(enc), sp, end_ids, 1, may_share=False)
        return [self._completion(new[i], None if logps is None else logps[i], sp, end_ids) for i in range(len(ids))]

    def _sample(self, enc, sp: SamplingParams, end_ids: list[int], n: int, may_share: bool):
        """``generate`` on left-padded ``enc``: the new tokens ``[rows*n, <=max_new]`` and
        (return_logprobs) their processed log-probs."""
        tok, model = self.tok, self.model
        stopping = None
        if any(sp.stop):                         # the same test finish_completion applies afterwards
            stopping = StoppingCriteriaList([StopStrings(tok, sp.stop, enc.input_ids.shape[1])])
        was_training = model.training
        model.eval()
        try:
            inputs, n_ret = self._inputs(enc, n, may_share)
            out = model.generate(
                **inputs, do_sample=True, temperature=sp.temperature, top_p=sp.top_p,
                # Explicit 0 / 1.0: otherwise a model's generation_config.json defaults (Qwen's
                # top_k=20, repetition_penalty=1.05) would reshape the sampling distribution.
                top_k=sp.top_k, repetition_penalty=1.0, max_new_tokens=sp.max_new_tokens,
                num_return_sequences=n_ret, pad_token_id=tok.pad_token_id,
                eos_token_id=end_ids or None, stopping_criteria=stopping, return_dict_in_generate=True,
                output_scores=self.return_logprobs, synced_gpus=self.synced_gpus,
            )
        finally:
            model.train(was_training)
        new = out.sequences[:, enc.input_ids.shape[1]:]                  # [rows*n, <=max_new]
        logps = None
        if self.return_logprobs:
            scores = torch.stack(out.scores, 1).float().log_softmax(-1)  # processed (temperature, top-p)
            logps = scores.gather(-1, new.unsqueeze(-1)).squeeze(-1)
        return new, logps

    def _inputs(self, enc, n: int, may_share: bool) -> tuple[dict, int]:
        """generate's inputs and its num_return_sequences. Shared prefill: ``generate`` would
        expand every prompt to its G rows before the prefill, running each prompt G times;
        instead the prompts but their last token run once, at the positions generate itself
        gives left-padded rows, and the KV cache is repeated G times. Same distribution,
        1/G of the prefill (the prompt is most of a short completion's sampling cost)."""
        ids, am = enc.input_ids, enc.attention_mask
        if not (self.share_prefill and may_share and n > 1 and ids.shape[1] > 1 and not self.synced_gpus):
            return dict(enc), n
        pos = (am.long().cumsum(-1) - 1).masked_fill(am == 0, 0)        # as GenerationMixin does
        cache = DynamicCache(config=self.model.config)
        self.model(input_ids=ids[:, :-1], attention_mask=am[:, :-1], position_ids=pos[:, :-1],
                   past_key_values=cache, use_cache=True)
        cache.batch_repeat_interleave(n)                                  # [B*G, ...], prompt-major
        return {"input_ids": ids.repeat_interleave(n, 0), "attention_mask": am.repeat_interleave(n, 0),
                "past_key_values": cache}, 1

    def _completion(self, ids: torch.Tensor, logps, sp: SamplingParams, end_ids: list[int]) -> Completion:
        # Rows that finished early are padded (with the EOS id itself when pad == eos):
        # finish_completion keeps exactly the sampled tokens, the text is their decoding.
        decode = lambda x: self.tok.decode(x, skip_special_tokens=True)  # noqa: E731
        ids, text, finish = finish_completion(ids.tolist(), decode, end_ids, sp.stop)
        lp = None if logps is None else logps[:len(ids)].tolist()
        return Completion(text, ids, lp, finish)

    @torch.no_grad()
    def update_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]] = ()) -> None:
        if self.private_copy:
            own = dict(self.model.named_parameters())
            for name, t in named_tensors:
                own[name].copy_(t)
        # Otherwise the engine holds the policy module itself: nothing to copy.
        self.weight_version += 1

    def sleep(self) -> None:
        pass

    def wake(self) -> None:
        pass


class _Enc(dict):
    """A dict of generate inputs with the attribute access a tokenizer's BatchEncoding has."""
    input_ids = property(lambda self: self["input_ids"])
    attention_mask = property(lambda self: self["attention_mask"])


class StopStrings(StoppingCriteria):
    """A ``generate`` stopping criterion: a row is done once the text of its last tokens holds
    a stop string (``first_stop``, the test ``finish_completion`` applies afterwards, so the
    row stops at the very token whose text completes it)."""

    def __init__(self, tok, stops: list[str], prompt_len: int):
        self.tok, self.stops, self.start = tok, [s for s in stops if s], prompt_len
        self.window = max(len(s) for s in self.stops) + 8   # tokens: each decodes to >= 1 char

    def __call__(self, input_ids: torch.Tensor, scores=None, **kw) -> torch.Tensor:
        tail = input_ids[:, self.start:][:, -self.window:]
        texts = self.tok.batch_decode(tail, skip_special_tokens=True)
        return torch.tensor([first_stop(t, self.stops) >= 0 for t in texts], device=input_ids.device)
