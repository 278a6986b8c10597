"""Routed calls apply the chosen deployment's ``vision_detail`` to image parts that set none."""

from __future__ import annotations

from typing import Any

from routing_helpers import emu_pool, emu_router

from azmem.azure.llm import LLMClient

IMAGE = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "https://x.example/a.png"}},
            {"type": "image_url", "image_url": {"url": "https://x.example/b.png", "detail": "high"}},
        ],
    }
]


def test_the_routed_deployments_vision_detail_fills_unset_details(emulator: Any) -> None:
    router = emu_router({"chat": emu_pool(emulator, "rv-low", **{"rv-low": {"vision_detail": "low"}})})
    with LLMClient(router=router) as llm:
        assert llm.generate(IMAGE).deployment == "rv-low"
        assert "".join(llm.stream(IMAGE))
    for sent in emulator.requests_for("rv-low"):
        parts = sent.json["messages"][0]["content"]
        assert [p["image_url"]["detail"] for p in parts if p["type"] == "image_url"] == ["low", "high"]
    assert len(emulator.requests_for("rv-low")) == 2
