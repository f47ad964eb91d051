"""Translations of user-facing text (zh-CN and en) and the choice of language per request."""

from __future__ import annotations

from collections.abc import Mapping

DEFAULT_LANGUAGE = "zh-CN"
LANGUAGES = ("zh-CN", "en")

CATALOGUE: Mapping[str, Mapping[str, str]] = {
    "Not found": {"zh-CN": "未找到"},
    "Invalid input": {"zh-CN": "输入无效"},
    "Conflict": {"zh-CN": "冲突"},
    "Not authenticated": {"zh-CN": "未认证"},
    "Forbidden": {"zh-CN": "无权操作"},
    "Service unavailable": {"zh-CN": "服务暂不可用"},
    "Internal error": {"zh-CN": "内部错误"},
    "Method not allowed": {"zh-CN": "不支持的请求方法"},
    "Telemetry rejected": {"zh-CN": "遥测数据被拒收"},
    "Error": {"zh-CN": "错误"},
}


def negotiate(accept_language: str | None) -> str:
    """The best of our languages for an Accept-Language header; English only when preferred.

    >>> negotiate("en-US,en;q=0.9"), negotiate("zh-CN,zh;q=0.9"), negotiate(None)
    ('en', 'zh-CN', 'zh-CN')
    >>> negotiate("fr;q=0.9, en;q=0.5")
    'en'
    """
    if not accept_language:
        return DEFAULT_LANGUAGE
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(accept_language.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        ranked.append((-quality, index, tag.strip().lower()))
    for _, _, tag in sorted(ranked):
        if tag.startswith("zh"):
            return "zh-CN"
        if tag.startswith("en"):
            return "en"
    return DEFAULT_LANGUAGE


def translate(text: str, language: str) -> str:
    """The text in ``language``; English source text is its own translation.

    >>> translate("Not found", "zh-CN"), translate("Not found", "en")
    ('未找到', 'Not found')
    """
    return CATALOGUE.get(text, {}).get(language, text)
