"""Message text: phrase pools in Chinese and English, and the sentences made from them."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import NamedTuple

from ._common import pick

ZH_SHORT = (
    "好的", "嗯嗯", "哈哈哈哈", "收到", "谢谢！", "在吗？", "晚安", "OK", "好滴", "没问题", "可以啊",
    "行", "知道了", "稍等一下", "马上到", "哈哈", "辛苦了", "666", "[捂脸]", "[呲牙]", "[OK]",
    "👍", "😂😂😂", "嗯", "啊？", "真的假的", "太好了", "我也是", "不用客气", "好的好的", "再说吧",
    "等我一下", "在的", "刚看到", "哦哦", "[旺柴]", "早", "到了", "明白", "好嘞",
)
_ZH_TEMPLATES = (
    "明天{time}在{place}见，别迟到啊", "我到{place}了，你到哪了？", "今晚一起去吃{food}吗？",
    "{name}说周末要来{place}玩", "这个周末要加班，烦死了", "刚开完会，等下回你",
    "文件已经发你邮箱了，记得查收", "你看这个 {url}", "快递到了吗？我看显示已签收",
    "妈，我这周六回家吃饭", "车票买好了，{day}{time}的高铁", "转你{money}元，上次{food}的钱",
    "{name}的生日是{day}，我们准备个惊喜吧", "会议改到{day}{time}了，在{num}楼会议室",
    "方案我改了第{num}版，你再看看", "孩子今天在学校表现不错，老师表扬了",
    "天气预报说{day}有雨，记得带伞", "这家{food}真的绝了，下次带你去",
    "我在{place}排队，前面还有{num}个人", "房租{day}之前交一下哈", "报销单子签好了吗？财务催了",
    "刚才信号不好，你再说一遍？", "晚上{time}打球，{place}，来不来", "帮我看下这个报错是啥意思",
    "代码已经提交了，麻烦review一下", "双十一买了{num}件，钱包空了", "体检报告出来了，一切正常",
    "{name}结婚请帖收到了吗", "我们{day}去{place}自驾，算你一个？", "群里的接龙大家别忘了填",
    "航班延误了，预计{time}落地", "今天健身房人好多，练了{num}分钟就走了", "猫又把花盆打翻了[捂脸]",
    "周报写完了吗？{time}前要交", "你那边下雪了吗？", "{food}外卖到了，下来拿一下",
    "新项目启动会定在{day}", "我妈让你{day}过来吃饭", "工资到账了吗", "这个价格还能再便宜点吗？",
    "电影{time}开场，我先去取票", "记得给{name}回个电话", "小区{day}停水，提前接点水",
    "那个合同第{num}条要再确认一下", "看到你朋友圈了，{place}好美啊", "今天地铁太挤了，差点没上去",
    "周末去看房，{place}那个小区感觉还行", "老师说{day}要开家长会", "给你推荐个公众号，讲理财的挺好",
    "{name}，你上次说的那本书叫什么来着", "我先睡了，明天{time}还要早起", "群主发个红包庆祝一下吧",
    "链接打不开，你重新发一下 {url}", "{day}的活动取消了，通知一下大家", "今天{food}吃撑了",
    "充电宝借我用一下，手机只剩{num}%了", "你们谁有{place}附近的停车位推荐", "收到，辛苦{name}",
)
_ZH_PLACES = (
    "公司楼下", "星巴克", "万达广场", "南山区", "三里屯", "西湖边", "火车站", "机场T3", "地铁站B口",
    "学校门口", "老地方", "人民公园", "世纪大道", "医院门口", "小区东门", "大学城", "五道口", "春熙路",
)
_ZH_FOODS = (
    "火锅", "烤肉", "麻辣烫", "日料", "烧烤", "小龙虾", "酸菜鱼", "螺蛳粉", "奶茶", "兰州拉面",
    "黄焖鸡", "披萨", "生煎", "海底捞", "肠粉", "煲仔饭", "串串",
)
_ZH_DAYS = ("明天", "后天", "今晚", "周一", "周二", "周三", "周四", "周五", "周六", "周日", "下周三", "月底")
_ZH_TAILS = (
    "", "", "", "", "", "", "[微笑]", "[呲牙]", "[捂脸]", "[强]", "[玫瑰]", "[旺柴]", "[奸笑]",
    "😂", "👍", "🙏", "❤️", "～", "！", "。。。", "哈哈", "🤣",
)

_EN_SHORT = (
    "ok", "Sounds good!", "lol", "haha yes", "Thanks!", "On my way", "k", "Sure", "Yep", "Nope",
    "omw", "Love it", "👍", "😂", "❤️", "Good night", "Miss you", "Call me", "brb", "Same",
    "No worries", "Awesome!", "Got it", "Wait what", "🙏", "Congrats!!", "Cool", "Running late",
)
_EN_TEMPLATES = (
    "Want to grab {food} at {time}?", "I'm at {place}, where are you?", "Running {num} minutes late, sorry!",
    "Did you see what {name} posted?", "Can you pick up milk on the way home?", "Check this out {url}",
    "Flight lands at {time} {day}", "Meeting moved to {day} at {time}", "Happy birthday {name}!! 🎉",
    "Don't forget the dentist {day}", "Just sent you ${money} for the {food}", "Who's coming to {place} {day}?",
    "The kids are asleep finally", "Can you send me the photos from {place}?", "Traffic is insane on the bridge",
    "I left my keys at {place} again", "Are we still on for {day}?", "Tickets are {money} each, in?",
    "Mom says dinner at {time}", "Did the package arrive?", "Battery at {num}%, call you later",
    "That {food} place on 5th is so good", "Wifi password is on the fridge", "Game starts at {time}, come over",
    "Remind me to call {name} {day}", "Rent is due {day}", "Just landed!", "Weather looks awful {day}",
    "Can you review the doc before {time}?", "We need {num} more chairs for {day}", "Parking at {place} is full",
    "Did you book the table for {num}?", "Send me the address please", "I'll be home by {time}",
    "Gym at {time} {day}?", "{name} is bringing {food}", "Movie starts at {time}, I got the tickets",
)
_EN_PLACES = (
    "the station", "Starbucks", "the mall", "Trader Joe's", "the office", "Central Park", "the airport",
    "Mom's", "the gym", "school", "the usual spot", "Target", "the library", "Whole Foods",
)
_EN_FOODS = ("pizza", "sushi", "tacos", "burgers", "ramen", "brunch", "coffee", "Thai food", "bagels", "pho")
_EN_DAYS = ("tomorrow", "tonight", "on Monday", "on Friday", "this weekend", "next week", "on Sunday")
_EN_TAILS = ("", "", "", "", "", "", "!", " 😂", " 👍", " ❤️", " lol", "?", " 🙏", " 😅", " :)")

_ZH_URLS = (
    "https://mp.weixin.qq.com/s/{b64}", "https://b23.tv/{short}", "https://m.tb.cn/h.{short}",
    "https://v.douyin.com/{short}/", "https://www.zhihu.com/question/{digits}",
)
_EN_URLS = (
    "https://youtu.be/{short}", "https://www.nytimes.com/2023/{digits}.html",
    "https://maps.app.goo.gl/{short}", "https://open.spotify.com/track/{b64}",
)
_URL_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

# Contacts of the English-speaking samples (iMessage, WhatsApp), lower-case as in Apple IDs.
FIRST_NAMES = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy")


def _zh_clock(hour: int, minute: int) -> str:
    return f"{hour}点" + ("半" if minute == 30 else f"{minute}分" if minute else "")


def _en_clock(hour: int, minute: int) -> str:
    return f"{(hour - 1) % 12 + 1}:{minute:02d}{'am' if hour < 12 else 'pm'}"


class _Language(NamedTuple):
    short: tuple[str, ...]
    templates: tuple[str, ...]
    places: tuple[str, ...]
    foods: tuple[str, ...]
    days: tuple[str, ...]
    tails: tuple[str, ...]
    urls: tuple[str, ...]
    joiner: str  # between two sentences of one message
    clock: Callable[[int, int], str]


CHINESE = _Language(ZH_SHORT, _ZH_TEMPLATES, _ZH_PLACES, _ZH_FOODS, _ZH_DAYS, _ZH_TAILS, _ZH_URLS, "，", _zh_clock)
ENGLISH = _Language(_EN_SHORT, _EN_TEMPLATES, _EN_PLACES, _EN_FOODS, _EN_DAYS, _EN_TAILS, _EN_URLS, " ", _en_clock)


def url(rng: random.Random, language: _Language) -> str:
    def token(n):
        return "".join(rng.choices(_URL_CHARS, k=n))
    return pick(rng, language.urls).format(
        b64=token(22), short=token(7), digits=rng.randint(10**8, 10**9))


def sentence(rng: random.Random, language: _Language, names: tuple[str, ...]) -> str:
    """One filled-in template: random names, places, times and numbers keep texts distinct."""
    hour, minute = rng.randint(7, 22), rng.choice((0, 0, 15, 30, 45, rng.randint(1, 59)))
    return pick(rng, language.templates).format(
        name=pick(rng, names), place=pick(rng, language.places), food=pick(rng, language.foods),
        day=pick(rng, language.days), time=language.clock(hour, minute), num=rng.randint(2, 99),
        money=f"{rng.randint(5, 800)}.{rng.randint(0, 99):02d}", url=url(rng, language))


def text_pool(rng: random.Random, language: _Language, names: Iterable[str], size: int) -> tuple[str, ...]:
    """Pre-made message texts, drawn from in the hot loop instead of composing each one."""
    names = tuple(names) or ("Alex",)
    pool = []
    for _ in range(size):
        if rng.random() < 0.3:
            text = pick(rng, language.short)
        else:
            text = sentence(rng, language, names)
            if rng.random() < 0.2:
                text += language.joiner + sentence(rng, language, names)
        pool.append(text + pick(rng, language.tails))
    return tuple(pool)


def long_text(rng: random.Random, pool: tuple[str, ...]) -> str:
    """A pasted article or forwarded chat log: a few KB, so the row spills into overflow pages."""
    return "\n".join(rng.choices(pool, k=rng.randint(60, 160)))
