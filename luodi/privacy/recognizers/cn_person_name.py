"""Chinese person names: a surname list, jieba's dictionary and its ``nr`` name model.

A candidate is a surname followed by one or two Han characters. It is dropped when the
surname character is really part of a dictionary word (``提高``, ``高兴``, ``金额``), and
kept when the given-name characters are far likelier in names than in ordinary text
(log-ratio from jieba's person-name HMM). Nearby context words (先生, 客户, 姓名...)
raise the score.
"""

from __future__ import annotations

import re

from luodi.privacy.finding import Finding
from luodi.privacy.lexicon import Lexicon, load_lexicon
from luodi.privacy.recognizer import CONTEXT_BOOST, has_context

__all__ = ["CnPersonNameRecognizer"]

# The ~250 most common single-character surnames (about 95% of the population)...
_SINGLE = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏"
    "魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚"
    "邵万钱严覃武戴莫孔向汤常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳"
    "甘祝包宁尚符舒阮柯纪梅童凌毕单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解"
    "牟艾尤阳时穆农司卓古吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧闵苟邬边"
    "卞姬师仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝萧傅阎权储谈宣井浦杭容亢"
    "秋仰勾鞠丰钮桓凤利竺蔺匡班晋祖钭蓟暴冀虎谯"
)
# ...and the compound ones.
_COMPOUND = (
    "欧阳",
    "司马",
    "上官",
    "诸葛",
    "东方",
    "皇甫",
    "尉迟",
    "公孙",
    "慕容",
    "长孙",
    "宇文",
    "司徒",
    "夏侯",
    "轩辕",
    "令狐",
    "端木",
    "独孤",
    "南宫",
    "西门",
    "呼延",
    "百里",
    "万俟",
)
_CANDIDATE = re.compile("(?:" + "|".join(_COMPOUND) + f")|[{_SINGLE}]")
# Characters that never end a given name but often follow one in running text.
_STOP = set("的了是在和与及或也都就还又很把被给对向从到于以为着过吗呢吧啊之其这那你我他她它们个")
# jieba tags these nr, but in running text they are words; and words newer than its
# dictionary (2013) whose second character looks like a given name's (包邮).
_NOT_NAMES = frozenset(
    {"谢谢", "华为", "江山", "明白", "文明", "高峰", "周到", "方圆", "白银", "金融", "钱包"}
    | {"包邮", "包退", "包换", "包税", "包装", "秒杀", "闪购", "万能"}
    | {"温馨", "吉祥", "范畴", "许诺", "雷霆", "冉冉", "高僧", "龙亭", "戴尔", "魏巍"}
)
# jieba tags hundreds of frequent ordinary words nr (顾客 1365, 阳光 3451, 玉米 1722,
# 温馨 335); two-character "names" this frequent (702 of them) are mostly words or
# famous people, while the names of customers are rarely in the dictionary at all (the
# character model finds those). Such a pair is read as a word unless a cue (先生, 客户,
# 我叫...) stands next to it, or its given character is one names use far more than
# words do (李娜, 刘翔: the words among those are in _NOT_NAMES).
_WORDLIKE_NR_FREQ = 200
_NAME_LIKE_END = 3.0
_CONTEXT = (
    "先生",
    "女士",
    "小姐",
    "客户",
    "姓名",
    "名字",
    "联系人",
    "经理",
    "老师",
    "同志",
    "医生",
    "患者",
    "申请人",
    "收件人",
    "户主",
    "持卡人",
    "本人",
    "叫",
    "签名",
    "负责人",
    "法人",
)
_END2 = -0.1  # log-ratio a two-character name's given character must exceed
_MID3 = -0.5  # ... the middle character of a three-character name
_END3 = 0.3  # ... its last character


class CnPersonNameRecognizer:
    """Finds Chinese personal names; entity ``PERSON``."""

    name = "cn_person_name"
    entity_types = ("PERSON",)

    def __init__(self, lexicon: Lexicon | None = None) -> None:
        self._lex = lexicon or load_lexicon()

    def find(self, text: str) -> list[Finding]:
        found: list[Finding] = []
        pos = 0
        while True:
            m = _CANDIDATE.search(text, pos)
            if m is None:
                return found
            start, after = m.span()
            pos = start + 1
            span = self._judge(text, start, after)
            if span is None:
                continue
            end, score, rule = span
            if has_context(text, start, end, _CONTEXT):
                score = min(1.0, score + CONTEXT_BOOST)
            found.append(Finding("PERSON", start, end, score, f"{self.name}:{rule}"))
            pos = end

    def _judge(self, text: str, start: int, after: int) -> tuple[int, float, str] | None:
        """(end, score, rule) for a name starting at ``start``, or None."""
        lex = self._lex
        plain, names = lex.plain, lex.names
        surname = text[start:after]
        g1 = text[after : after + 1]
        if not g1 or not "\u4e00" <= g1 <= "\u9fff" or g1 in _STOP:
            return None
        # The surname character ends a word that began before it: 提高, 由于, 之王.
        # (Unless the characters before form a word themselves: 今天|王芳, not 今|天王,
        # or end in a cue such as 持卡人|马秀英, not 持卡|人马.)
        for k in (1, 2):
            if start - k >= 0 and "\u4e00" <= text[start - k] <= "\u9fff":
                word = text[start - k : start + 1]
                if self._is_word(word):
                    before = text[max(0, start - k - 1) : start]
                    if k == 1 and len(before) == 2 and lex.freq(before) > lex.freq(word):
                        continue
                    if any(text.endswith(w, 0, start) for w in _CONTEXT):
                        break
                    return None
        g2 = text[after + 1 : after + 2]
        three_ok = bool(g2) and "\u4e00" <= g2 <= "\u9fff" and g2 not in _STOP
        mid1 = lex.name_mid.get(g1, -9.0)
        end1 = lex.name_end.get(g1, -9.0)
        end2 = lex.name_end.get(g2, -9.0) if three_ok else -9.0
        # jieba tags many ordinary words nr (申请人, 石家庄): a dictionary name counts
        # only if its given-name characters also look like one.
        if three_ok and mid1 > _MID3 and end2 > _END3 and surname + g1 + g2 in names:
            return after + 2, 0.85, "dict3"
        pair = surname + g1
        if pair in _NOT_NAMES or pair in plain:
            return None  # 高兴, 王国, 金额: a word, not a name
        if self._is_word(pair) and not has_context(text, start, after + 1, _CONTEXT):
            return None  # 顾客, 阳光: a frequent word jieba tags as a name, with no cue
        if end1 > _END2 and pair in names and not (three_ok and end2 > 1.5):
            return after + 1, 0.8, "dict2"
        if three_ok and mid1 > _MID3:
            # g2 begins the next word (张伟|来电) unless it is very name-like.
            g2_starts_word = end2 < 1.5 and self._is_word(text[after + 1 : after + 3])
            likely_given = end2 > _END3 or (mid1 > 0.0 and g1 + g2 in lex.words)  # 建国, 丹丹
            if likely_given and not g2_starts_word:
                return after + 2, 0.65, "model3"
        if end1 > _END2:
            return after + 1, 0.55, "model2"
        return None

    def _is_word(self, text: str) -> bool:
        """An ordinary word: in the dictionary untagged, or a name-tagged one this frequent."""
        lex = self._lex
        if text in lex.plain:
            return True
        return (
            text in lex.names
            and lex.freq(text) >= _WORDLIKE_NR_FREQ
            and lex.name_end.get(text[-1], -9.0) < _NAME_LIKE_END
        )
