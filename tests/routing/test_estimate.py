"""Token estimates before sending, corrected by what the service reports."""

from __future__ import annotations

from azmem.azure.routing import EstimateCorrector, estimate_prompt_tokens


def test_heuristic_counts_text_messages_and_images() -> None:
    assert estimate_prompt_tokens("x" * 400) == 100 + 4 + 3
    msgs = [
        {"role": "system", "content": "a" * 40},
        {
            "role": "user",
            "content": [{"type": "text", "text": "b" * 40}, {"type": "image_url", "image_url": {}}],
        },
    ]
    assert estimate_prompt_tokens(msgs) == 20 + 8 + 3 + 765
    assert estimate_prompt_tokens(msgs, extra_chars=400) == estimate_prompt_tokens(msgs) + 100


def test_corrector_learns_the_reported_ratio_within_bounds() -> None:
    c = EstimateCorrector(alpha=0.5)
    assert c.correct(100) == 100
    for _ in range(20):
        c.observe(100, 150)
    assert 149 <= c.correct(100) <= 151
    for _ in range(50):
        c.observe(100, 100_000)
    assert c.correct(100) == 400  # capped at 4x: one odd response cannot starve the limiter
    c.observe(0, 10)  # ignored
    assert c.correct(100) == 400
