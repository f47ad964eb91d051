"""The console's words in zh-CN and English.

Every page module keeps its own ``TEXT`` (English → Chinese); :func:`merge` joins them into the
console's catalogue. Page code writes English and asks the viewer to translate (``viewer.t``).
In strict mode (tests) a text missing from the catalogue is shown as ``⟦text⟧`` so that a
browser test walking every page finds it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

LANGUAGES = {"zh-CN": "中文", "en": "English"}
MISSING = "⟦{}⟧"


def merge(parts: Iterable[Mapping[str, str]]) -> dict[str, str]:
    """One catalogue from the modules' ``TEXT``; the same English text must mean one thing.

    >>> merge([{"Save": "保存"}, {"Cancel": "取消", "Save": "保存"}])
    {'Save': '保存', 'Cancel': '取消'}
    """
    catalogue: dict[str, str] = {}
    for part in parts:
        for english, chinese in part.items():
            if catalogue.get(english, chinese) != chinese:
                raise ValueError(
                    f"{english!r} is translated twice: {catalogue[english]!r}, {chinese!r}"
                )
            catalogue[english] = chinese
    return catalogue


def translate(
    catalogue: Mapping[str, str], language: str, text: str, *, strict: bool = False
) -> str:
    """``text`` in ``language``; English is the catalogue's key.

    >>> translate({"Machines": "设备"}, "zh-CN", "Machines"), translate({}, "en", "Machines")
    ('设备', 'Machines')
    >>> translate({}, "zh-CN", "Machines", strict=True)
    '⟦Machines⟧'
    """
    if text not in catalogue:
        return MISSING.format(text) if strict else text
    return text if language == "en" else catalogue[text]
