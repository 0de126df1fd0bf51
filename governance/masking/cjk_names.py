"""People's names written in Chinese or Japanese, which the names-and-places model (trained
mostly on Latin-script text) rarely finds.

Chinese and Japanese names have a shape a rule can use: a family name from a short, well
known list (a few hundred cover most people: the Chinese Hundred Family Surnames, Japan's
commonest family names), then one to three characters of given name; Japanese writes a
space between the two more often than not, and follows a name with an honorific (さん, 様,
氏). A candidate counts when that shape comes with evidence: an honorific after it, a
space between family and given name, a word that introduces a person before it (客户,
联系人, 给, お客様), or the cell holding the name alone. A family-name character inside
an ordinary word (王路, a street) lacks all of them.
"""

from __future__ import annotations

import re

from privet.governance.masking.entities import Finding, PiiType

__all__ = ["cjk_person_names"]

# The commonest Chinese family names (single and compound), in simplified and traditional script.
_ZH_SURNAMES = (
    "欧阳 司马 诸葛 上官 东方 皇甫 尉迟 公孙 慕容 令狐 司徒 夏侯 长孙 宇文 歐陽 諸葛 東方 司馬 "
    "王 李 张 刘 陈 杨 黄 赵 吴 周 徐 孙 马 朱 胡 郭 何 林 高 罗 郑 梁 谢 宋 唐 许 韩 冯 邓 曹 彭 曾 肖 田 董 潘 袁 "
    "蔡 蒋 余 于 杜 叶 程 魏 苏 吕 丁 任 卢 姚 沈 钟 姜 崔 谭 陆 范 汪 廖 石 金 韦 贾 夏 付 方 邹 熊 白 孟 秦 邱 侯 江 "
    "尹 薛 闫 段 雷 龙 黎 史 陶 贺 毛 郝 顾 龚 邵 万 覃 武 钱 戴 严 莫 孔 向 常 汤 康 易 乔 赖 文 施 洪 辛 柯 庄 甘 "
    "牛 聂 齐 单 凌 葛 安 华 蒙 鲁 倪 俞 傅 温 申 褚 卫 蒋 沈 韩 楊 張 劉 陳 黃 趙 吳 孫 馬 鄭 羅 謝 許 馮 鄧 "
    "蕭 董 葉 蘇 呂 盧 鍾 譚 陸 賈 鄒 龔 邵 萬 錢 嚴 湯 喬 賴 莊 聶 齊 單 龐 樊 邢 冉 佟 桂 柴 阮 闵 纪 舒 屈 项 祝 "
    "毕 左 岳 殷 苗 耿 管 卜 伍 梅 盛 童 滕 焦 霍 翟 路 解 包 丛 柳 鲍 涂 关 芦 谷 季 艾 车 郎 宁 占 姬 桑 邬 伊 瞿 "
).split()
_JA_SURNAMES = (
    "佐藤 鈴木 高橋 田中 伊藤 渡辺 山本 中村 小林 加藤 吉田 山田 佐々木 山口 松本 井上 木村 林 斎藤 清水 山崎 森 池田 橋本 阿部 "
    "石川 山下 中島 石井 小川 前田 岡田 長谷川 藤田 後藤 近藤 村上 遠藤 青木 坂本 斉藤 福田 太田 西村 藤井 金子 岡本 藤原 中野 "
    "三浦 原田 中川 松田 竹内 小野 田村 中山 和田 石田 森田 上田 原 内田 柴田 酒井 宮崎 横山 高木 安藤 宮本 大野 小島 谷口 今井 "
    "工藤 高田 増田 丸山 杉山 村田 大塚 新井 小山 平野 藤本 河野 上野 野口 武田 松井 千葉 岩崎 菅原 木下 久保 佐野 野村 松尾 "
    "市川 菊地 杉本 古川 大西 島田 水野 桜井 高野 渡部 吉川 山内 西田 飯田 菊池 西川 小松 北村 安田 五十嵐 川口 平田 関 中田 "
    "久保田 服部 東 岩田 土屋 川崎 福島 本田 辻 樋口 秋山 田口 永井 山中 中西 吉村 川上 大橋 石原 松岡 浅野 馬場 荒木 大久保 "
    "野田 小沢 田辺 川村 星野 黒田 堀 尾崎 望月 永田 熊谷 内藤 松村 西山 大谷 平井 大島 岩本 片山 本間 早川 横田 岡崎 荒井 "
    "大石 鎌田 成田 宮田 小田 石橋 篠原 須藤 河合 大川 高井 須田 菅野 渡邊 齋藤 髙橋 宇野 津田 浜田 宮下 松下 桑原 "
).split()

_ZH_FAMILY = "|".join(sorted(set(_ZH_SURNAMES), key=len, reverse=True))
_JA_FAMILY = "|".join(sorted(set(_JA_SURNAMES), key=len, reverse=True))
_HAN = r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"
_KANA = r"[\u3041-\u309f\u30a0-\u30ff]"
_SPACE = r"[ \u3000]"

# Honorifics and titles after a name, and words that introduce a person before one.
_JA_AFTER = r"(?:さん|様|さま|氏|君|くん|ちゃん|先生|殿)"
_ZH_AFTER = (r"(?:先生|女士|小姐|老师|同学|经理|总|师傅|医生|教授|阿姨|叔叔|您好|你好|来电|致电|打电话|反映|投诉|"
             r"询问|的订单|的账户|的地址)")
_BEFORE = (r"(?:客户|顾客|用户|联系人|收件人|寄件人|患者|员工|姓名[:：]?|名字[:：]?|和|与|跟|同|给|由|致|"
           r"お客様|顧客の|担当者?の?|氏名[:：]?|名前[:：]?|患者の?)")

# Each with the name as its group `name`.
_PATTERNS = (
    # Japanese, family and given name with a space: 山口 知実, 佐藤　裕太 (up to an honorific,
    # a particle in hiragana or anything not Han or katakana).
    re.compile(rf"(?P<name>(?:{_JA_FAMILY}){_SPACE}(?:{_HAN}|{_KANA}){{1,3}}?)(?:{_JA_AFTER}|(?!{_HAN}|[\u30a0-\u30ff]))"),
    # Japanese, written together, then an honorific: 田中太郎さん.
    re.compile(rf"(?P<name>(?:{_JA_FAMILY})(?:{_HAN}|{_KANA}){{1,3}}?){_JA_AFTER}"),
    # Chinese after a word that introduces a person: 客户华桂珍, 寄给陈秀英.
    re.compile(rf"{_BEFORE}(?P<name>(?:{_ZH_FAMILY}){_HAN}{{1,2}})"),
    # Chinese before a title: 王伟先生.
    re.compile(rf"(?P<name>(?:{_ZH_FAMILY}){_HAN}{{1,2}}?){_ZH_AFTER}"),
)
# A cell that is a name and nothing else.
_WHOLE = re.compile(rf"\s*(?:(?:{_ZH_FAMILY}){_HAN}{{1,2}}|(?:{_JA_FAMILY}){_SPACE}?(?:{_HAN}|{_KANA}){{1,3}})\s*")
_SCORE = 0.75


def cjk_person_names(text: str) -> list[Finding]:
    """The Chinese and Japanese personal names in `text` (see the module's rules)."""
    whole = _WHOLE.fullmatch(text)
    if whole is not None:
        stripped = text.strip()
        start = text.index(stripped)
        return [Finding(PiiType.PERSON_NAME, _SCORE, start, start + len(stripped))]
    found: list[Finding] = []
    for pattern in _PATTERNS:
        for m in pattern.finditer(text):
            start, end = m.span("name")
            if not any(f.start < end and start < f.end for f in found):
                found.append(Finding(PiiType.PERSON_NAME, _SCORE, start, end))
    return sorted(found, key=lambda f: f.start)
