"""Realistic sample chat databases and the changes their apps make to them.

The generators write files shaped like the real ones (schemas, indexes, triggers, id
schemes, text, blobs, journal modes) so that the demo, the tests and the benchmarks exercise
what syncd meets in the wild: rowid reuse, in-place rewrites, whole-chat deletes, rows spilling
into overflow pages, FTS shadow tables, WAL files. Each `<app>_<change>(db, rng, ...)` function
makes one change the way the app does, in one transaction, and returns the ids it touched.

Everything is deterministic for a given seed or `random.Random` state and database content.
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import itertools
import os
import plistlib
import random
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import partial
from typing import NamedTuple

import apsw

# Rows per executemany call when one message needs rows in several tables.
BATCH_ROWS = 10_000

# -----------------------------------------------------------------------------------------
# Shared helpers
# -----------------------------------------------------------------------------------------


@contextlib.contextmanager
def _new_database(path: str | os.PathLike) -> Iterator[apsw.Connection]:
    """Open a brand-new database at `path`; remove it again if filling it fails."""
    path = os.fspath(path)
    # O_EXCL makes the overwrite check and the creation one step; SQLite accepts an
    # empty file as a new database.
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    try:
        db = apsw.Connection(path)
        try:
            yield db
        finally:
            db.close()
    except BaseException:
        for leftover in (path, path + "-wal", path + "-shm", path + "-journal"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(leftover)
        raise


def _bulk_load_pragmas(db: apsw.Connection) -> None:
    """Speed settings for the one-off generation; none of them is stored in the file."""
    db.execute("PRAGMA synchronous=OFF; PRAGMA cache_size=-262144; PRAGMA temp_store=MEMORY")


def _batched(rows: Iterable, size: int) -> Iterator[list]:
    iterator = iter(rows)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def _random_keys(db: apsw.Connection, rng: random.Random, table: str, key: str,
                 count: int, where: str = "1") -> list[int]:
    """Up to `count` distinct random values of integer primary key `key` among rows matching `where`.

    Probes random points of the key range instead of `ORDER BY random()`, which would
    read the whole table of a million-message database for every change.
    """
    low, high = db.execute(f"SELECT min({key}), max({key}) FROM {table}").fetchone()
    if low is None:
        return []
    after = f"SELECT {key} FROM {table} WHERE {key} >= ? AND ({where}) ORDER BY {key} LIMIT 1"
    first = f"SELECT {key} FROM {table} WHERE ({where}) ORDER BY {key} LIMIT 1"
    found: set[int] = set()
    misses = 0
    while len(found) < count and misses < 8 * count + 32:
        row = db.execute(after, (rng.randint(low, high),)).fetchone()
        row = row or db.execute(first).fetchone()
        if row is None:
            break
        if row[0] in found:
            misses += 1
        found.add(row[0])
    return sorted(found)


def _random_key(db: apsw.Connection, rng: random.Random, table: str, key: str, where: str = "1") -> int:
    keys = _random_keys(db, rng, table, key, 1, where)
    if not keys:
        raise LookupError(f"no row of {table} matches {where}")
    return keys[0]


def _recent_key(db: apsw.Connection, rng: random.Random, table: str, key: str, where: str = "1",
                window: int = 200) -> int:
    """A random one of the newest `window` rows matching `where`: recalls and edits have a time limit."""
    keys = db.execute(f"SELECT {key} FROM {table} WHERE {where} ORDER BY {key} DESC LIMIT ?", (window,)).fetchall()
    if not keys:
        raise LookupError(f"no row of {table} matches {where}")
    return _pick(rng, keys)[0]


def _hex(rng: random.Random, nbytes: int) -> str:
    return rng.randbytes(nbytes).hex()


def _pick(rng: random.Random, items):
    # rng.choice does the same a few times slower, which shows in million-row loops.
    return items[int(rng.random() * len(items))]


# -----------------------------------------------------------------------------------------
# Message text
# -----------------------------------------------------------------------------------------

_ZH_SHORT = (
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


_CHINESE = _Language(_ZH_SHORT, _ZH_TEMPLATES, _ZH_PLACES, _ZH_FOODS, _ZH_DAYS, _ZH_TAILS, _ZH_URLS, "，", _zh_clock)
_ENGLISH = _Language(_EN_SHORT, _EN_TEMPLATES, _EN_PLACES, _EN_FOODS, _EN_DAYS, _EN_TAILS, _EN_URLS, " ", _en_clock)


def _url(rng: random.Random, language: _Language) -> str:
    def token(n):
        return "".join(rng.choices(_URL_CHARS, k=n))
    return _pick(rng, language.urls).format(
        b64=token(22), short=token(7), digits=rng.randint(10**8, 10**9))


def _sentence(rng: random.Random, language: _Language, names: tuple[str, ...]) -> str:
    """One filled-in template: random names, places, times and numbers keep texts distinct."""
    hour, minute = rng.randint(7, 22), rng.choice((0, 0, 15, 30, 45, rng.randint(1, 59)))
    return _pick(rng, language.templates).format(
        name=_pick(rng, names), place=_pick(rng, language.places), food=_pick(rng, language.foods),
        day=_pick(rng, language.days), time=language.clock(hour, minute), num=rng.randint(2, 99),
        money=f"{rng.randint(5, 800)}.{rng.randint(0, 99):02d}", url=_url(rng, language))


def _text_pool(rng: random.Random, language: _Language, names: Iterable[str], size: int) -> tuple[str, ...]:
    """Pre-made message texts, drawn from in the hot loop instead of composing each one."""
    names = tuple(names) or ("Alex",)
    pool = []
    for _ in range(size):
        if rng.random() < 0.3:
            text = _pick(rng, language.short)
        else:
            text = _sentence(rng, language, names)
            if rng.random() < 0.2:
                text += language.joiner + _sentence(rng, language, names)
        pool.append(text + _pick(rng, language.tails))
    return tuple(pool)


def _long_text(rng: random.Random, pool: tuple[str, ...]) -> str:
    """A pasted article or forwarded chat log: a few KB, so the row spills into overflow pages."""
    return "\n".join(rng.choices(pool, k=rng.randint(60, 160)))


# -----------------------------------------------------------------------------------------
# WeChat (Android EnMicroMsg.db, decrypted)
# -----------------------------------------------------------------------------------------

WECHAT_TEXT, WECHAT_IMAGE, WECHAT_VOICE, WECHAT_VIDEO = 1, 3, 34, 43
WECHAT_STICKER, WECHAT_APP, WECHAT_SYSTEM = 47, 49, 10000

# Statuses: 1 sending, 2 sent, 3 received unread, 4 received read, 5 failed.
WECHAT_SENDING, WECHAT_SENT, WECHAT_UNREAD, WECHAT_READ, WECHAT_FAILED = 1, 2, 3, 4, 5

# Apps stamp their own schema version here; a mirror must carry it over unchanged.
_WECHAT_USER_VERSION = 2
_WECHAT_START_MS = 1_551_398_400_000  # 2019-03-01, where generated histories begin

_WECHAT_SCHEMA = """
CREATE TABLE message ( msgId INTEGER PRIMARY KEY, msgSvrId INTEGER, type INT, status INT,
  isSend INT, isShowTimer INTEGER, createTime INTEGER, talker TEXT, content TEXT, imgPath TEXT,
  reserved TEXT, lvbuffer BLOB, transContent TEXT, transBrandWording TEXT, talkerId INTEGER,
  bizClientMsgId TEXT, bizChatId INTEGER DEFAULT -1, bizChatUserId TEXT, msgSeq INTEGER, flag INT);
CREATE TABLE rcontact ( username TEXT DEFAULT '' PRIMARY KEY, alias TEXT DEFAULT '',
  conRemark TEXT DEFAULT '', domainList TEXT DEFAULT '', nickname TEXT DEFAULT '',
  pyInitial TEXT DEFAULT '', quanPin TEXT DEFAULT '', showHead INTEGER DEFAULT 0,
  type INT DEFAULT 0, weiboFlag INT DEFAULT 0, weiboNickname TEXT DEFAULT '',
  conRemarkPYFull TEXT DEFAULT '', conRemarkPYShort TEXT DEFAULT '', lvbuff BLOB,
  verifyFlag INT DEFAULT 0, encryptUsername TEXT DEFAULT '', chatroomFlag INT,
  deleteFlag INT DEFAULT 0, contactLabelIds TEXT DEFAULT '', descWordingId TEXT DEFAULT '',
  openImAppid TEXT, sourceExtInfo TEXT);
CREATE TABLE rconversation ( username TEXT DEFAULT '' PRIMARY KEY, msgCount INTEGER DEFAULT 0,
  unReadCount INTEGER DEFAULT 0, chatmode INTEGER DEFAULT 0, status INTEGER DEFAULT 0,
  isSend INTEGER DEFAULT 0, conversationTime INTEGER DEFAULT 0, content TEXT DEFAULT '',
  msgType TEXT DEFAULT '', digest TEXT DEFAULT '', digestUser TEXT DEFAULT '',
  hasTrunc INTEGER DEFAULT 0, parentRef TEXT, attrflag INTEGER DEFAULT 0,
  editingMsg TEXT DEFAULT '', atCount INTEGER DEFAULT 0, flag INTEGER DEFAULT 0);
CREATE TABLE userinfo ( id INTEGER PRIMARY KEY, type INT, value TEXT);
CREATE TABLE chatroom ( chatroomname TEXT DEFAULT '' PRIMARY KEY, addtime INTEGER,
  memberlist TEXT, displayname TEXT, chatroomnick TEXT, roomflag INTEGER, roomowner TEXT,
  roomdata BLOB, isShowname INTEGER, selfDisplayName TEXT, style INTEGER,
  chatroomdataflag INTEGER, modifytime LONG, chatroomnotice TEXT, chatroomVersion INTEGER,
  chatroomnoticeEditor TEXT, chatroomnoticePublishTime LONG, memberCount INTEGER);
CREATE INDEX contact_alias_index ON rcontact ( alias );
CREATE INDEX en_username_unique_index ON rcontact ( encryptUsername );
CREATE INDEX rconversation_time_index ON rconversation ( conversationTime );
CREATE INDEX messageSvrIdIndex ON message ( msgSvrId );
CREATE INDEX messageTalkerIndex ON message ( talker );
CREATE INDEX messageTalkerCreateTimeIndex ON message ( talker, createTime );
CREATE INDEX messageCreateTimeIndex ON message ( createTime );
"""
_WECHAT_INSERT_MESSAGE = (
    "INSERT INTO message (msgSvrId, type, status, isSend, isShowTimer, createTime, talker, content,"
    " imgPath, lvbuffer, talkerId, msgSeq, flag) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,0)")

_SYSTEM_CONTACTS = (  # (username, nickname, type): accounts every WeChat install has
    ("weixin", "微信团队", 3), ("filehelper", "文件传输助手", 3), ("qqmail", "QQ邮箱提醒", 1),
    ("fmessage", "朋友推荐消息", 1), ("medianote", "语音记事本", 1), ("floatbottle", "漂流瓶", 1),
    ("newsapp", "腾讯新闻", 1), ("notifymessage", "服务通知", 1),
)
_OFFICIAL_ACCOUNTS = (
    ("gh_3dfda90e39d6", "微信支付"), ("gh_43f2581f6fd6", "人民日报"), ("gh_f0a92aa7146c", "招商银行信用卡"),
)
_SURNAMES = (
    ("张", "zhang"), ("王", "wang"), ("李", "li"), ("刘", "liu"), ("陈", "chen"), ("杨", "yang"),
    ("赵", "zhao"), ("黄", "huang"), ("周", "zhou"), ("吴", "wu"), ("徐", "xu"), ("孙", "sun"),
    ("胡", "hu"), ("朱", "zhu"), ("高", "gao"), ("林", "lin"), ("何", "he"), ("郭", "guo"),
)
_GIVEN_NAMES = (
    ("伟", "wei"), ("芳", "fang"), ("娜", "na"), ("敏", "min"), ("静", "jing"), ("丽", "li"),
    ("强", "qiang"), ("磊", "lei"), ("军", "jun"), ("洋", "yang"), ("艳", "yan"), ("杰", "jie"),
    ("涛", "tao"), ("明", "ming"), ("超", "chao"), ("秀英", "xiuying"), ("晨", "chen"), ("宇", "yu"),
    ("欣怡", "xinyi"), ("子涵", "zihan"), ("浩然", "haoran"), ("思远", "siyuan"), ("婷", "ting"),
)
_HANDLES = ("Sunny☀️", "Lucky", "A-房产中介小王", "小鱼儿🐟", "Kevin", "momo", "阿杰", "Grace", "老李头")
_GROUP_NAMES = (
    "相亲相爱一家人", "公司项目群", "大学同学群", "周末羽毛球", "小区业主群", "三年二班家长群",
    "部门干饭群", "驴友团", "考研互助群", "老同事",
)
_WECHAT_APP_TITLES = (
    "2024年个税汇算清缴操作指南", "这5种食物千万不能一起吃", "周末去哪儿｜城市近郊露营地推荐",
    "重磅！楼市新政发布", "程序员如何保护自己的颈椎", "一图读懂医保新变化", "我们为什么越来越不爱发朋友圈",
)
_WECHAT_GROUP_NOTICES = (
    '"{a}"邀请"{b}"加入了群聊', '"{a}" 拍了拍 "{b}"', '"{a}"修改群名为"{group}"',
    '"{a}"与群里其他人都不是朋友关系，请注意隐私安全',
)
_WECHAT_PRIVATE_NOTICES = ("你已添加了{a}，现在可以开始聊天了。", '"{a}" 拍了拍我', "以上是打招呼的内容",
                           "{a}开启了朋友验证，你还不是他（她）朋友。请先发送朋友验证请求，对方验证通过后，才能聊天。")
# Where each kind of message starts on a 0..1 roll: text below the first cut, then image,
# voice, video, sticker, link, system notice and long text (see _WeChatComposer._kinds).
_WECHAT_KIND_CUTS = (0.808, 0.858, 0.898, 0.908, 0.938, 0.978, 0.998)
_WECHAT_DIGESTS = {WECHAT_IMAGE: "[图片]", WECHAT_VOICE: "[语音]", WECHAT_VIDEO: "[视频]", WECHAT_STICKER: "[动画表情]"}


class _WeChatContact(NamedTuple):
    username: str
    nickname: str


class _WeChatChat(NamedTuple):
    username: str
    contact_id: int  # rcontact rowid, stored in message.talkerId
    nickname: str
    members: tuple[_WeChatContact, ...]  # other members of a chatroom; () for a one-to-one chat


def _lv_buffer(*fields: int | str) -> bytes:
    """WeChat's LVBuffer: '{', then 4-byte ints and 2-byte-length UTF-8 strings, big-endian, then '}'."""
    parts = [b"{"]
    for field in fields:
        if isinstance(field, int):
            parts.append(field.to_bytes(4, "big", signed=True))
        else:
            data = field.encode()
            parts += (len(data).to_bytes(2, "big"), data)
    parts.append(b"}")
    return b"".join(parts)


def _wechat_person(rng: random.Random, taken: set[str]) -> tuple:
    """An rcontact row for a friend: wxid_ or custom username, Chinese nickname with pinyin."""
    (surname, sur_py), (given, given_py) = _pick(rng, _SURNAMES), _pick(rng, _GIVEN_NAMES)
    if rng.random() < 0.15:
        nickname = _pick(rng, _HANDLES)
        quanpin, initials = nickname.lower(), nickname[:1].upper()
    else:
        nickname, quanpin = surname + given, sur_py + given_py
        initials = (sur_py[0] + given_py[0]).upper()
    username = None
    while username is None or username in taken:
        if rng.random() < 0.7:
            username = "wxid_" + "".join(rng.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=14))
        else:
            username = f"{quanpin if quanpin.isascii() else 'user'}{rng.randint(80, 2005)}"
    taken.add(username)
    alias = f"{sur_py}_{rng.randint(1000, 99999)}" if rng.random() < 0.4 else ""
    remark = surname + ("哥" if rng.random() < 0.5 else "姐") if rng.random() < 0.2 else ""
    lvbuff = _lv_buffer(rng.randint(0, 2), "CN", "Guangdong", "Shenzhen", _pick(rng, _ZH_SHORT))
    return (username, alias, remark, nickname, initials, quanpin, 3, lvbuff, 0, f"v3_{_hex(rng, 24)}@stranger", 0)


def _wechat_contacts(db: apsw.Connection, rng: random.Random, chats: int, me: str) -> list[_WeChatChat]:
    """Fill rcontact, chatroom and userinfo; return the chats messages will be written to."""
    taken = {me}
    people = [_wechat_person(rng, taken) for _ in range(max(2, chats) * 3 + 10)]
    group_count = min(len(_GROUP_NAMES), max(1, chats // 5)) if chats >= 2 else 0
    rooms = [(f"{rng.randint(10**10, 10**11 - 1)}@chatroom", name) for name in _GROUP_NAMES[:group_count]]
    _wechat_insert_contacts(db, me, people, rooms)
    rowids = dict(db.execute("SELECT username, rowid FROM rcontact"))
    friends = [_WeChatContact(row[0], row[3]) for row in people]
    _wechat_insert_userinfo(db, rng, me)
    return ([_wechat_chatroom(db, rng, room, name, rowids[room], me, friends) for room, name in rooms]
            + [_WeChatChat(f.username, rowids[f.username], f.nickname, ()) for f in friends[:chats - group_count]])


def _wechat_insert_contacts(db: apsw.Connection, me: str, people: list[tuple], rooms: list[tuple[str, str]]) -> None:
    """rcontact rows in the order a phone gathers them, which fixes the rowids talkerId points at."""
    insert = ("INSERT INTO rcontact (username, alias, conRemark, nickname, pyInitial, quanPin, type, lvbuff,"
              " verifyFlag, encryptUsername, chatroomFlag) VALUES (?,?,?,?,?,?,?,?,?,?,?)")
    db.executemany(insert, [(name, "", "", nick, "", "", kind, None, 0, "", 0)
                            for name, nick, kind in _SYSTEM_CONTACTS])
    db.execute(insert, (me, "", "", "我", "W", "wo", 3, None, 0, "", 0))
    db.executemany(insert, [(name, "", "", nick, "", "", 3, None, 24, "", 0) for name, nick in _OFFICIAL_ACCOUNTS])
    db.executemany(insert, people)
    db.executemany(insert, [(room, "", "", name, "", "", 3, None, 0, "", 1) for room, name in rooms])


def _wechat_insert_userinfo(db: apsw.Connection, rng: random.Random, me: str) -> None:
    # ids 2, 4, 6, 9 and 42 are the account's username, nickname, phone, uin and WeChat ID.
    db.executemany("INSERT INTO userinfo (id, type, value) VALUES (?,?,?)", [
        (2, 3, me), (4, 3, "我"), (6, 3, f"1{rng.randint(3, 9)}{rng.randint(10**8, 10**9 - 1)}"),
        (9, 1, str(rng.randint(10**8, 2**31))), (42, 3, f"my_{rng.randint(1000, 9999)}")])


def _wechat_chatroom(db: apsw.Connection, rng: random.Random, room: str, name: str, contact_id: int, me: str,
                     friends: list[_WeChatContact]) -> _WeChatChat:
    """A chatroom row with some of our friends as members."""
    members = rng.sample(friends, min(len(friends), rng.randint(4, 12)))
    usernames = [me, *(m.username for m in members)]
    db.execute("INSERT INTO chatroom (chatroomname, addtime, memberlist, displayname, roomowner, roomflag,"
               " memberCount, modifytime) VALUES (?,?,?,?,?,0,?,?)",
               (room, _WECHAT_START_MS // 1000, ";".join(usernames), "、".join(m.nickname for m in members),
                _pick(rng, usernames), len(usernames), _WECHAT_START_MS))
    return _WeChatChat(room, contact_id, name, tuple(members))


class _WeChatComposer:
    """Builds `message` rows in WeChat's own formats for one account."""

    def __init__(self, rng: random.Random, me: str, texts: tuple[str, ...], seq: int):
        self._rng, self._me, self._texts, self._seq = rng, me, texts, seq
        self._last_time: dict[str, int] = {}
        self._kinds = (self._image, self._voice, self._video, self._sticker, self._app, self._system, self._long)

    def row(self, chat: _WeChatChat, create_time: int, *, fresh: bool) -> tuple:
        """One row for `_WECHAT_INSERT_MESSAGE`; `fresh` ones are still being sent or not yet read."""
        rng, members = self._rng, chat.members
        is_send = rng.random() < (0.15 if members else 0.45)
        sender = self._me if is_send else (_pick(rng, members).username if members else chat.username)
        roll = rng.random()
        if roll < _WECHAT_KIND_CUTS[0]:  # plain text, four rows in five: keep this path short
            msg_type, content, img_path, lvbuffer = WECHAT_TEXT, _pick(rng, self._texts), None, None
        else:
            make = self._kinds[bisect.bisect(_WECHAT_KIND_CUTS, roll) - 1]
            msg_type, content, img_path, lvbuffer = make(chat, sender, create_time)
        if msg_type == WECHAT_SYSTEM:
            is_send, status, server_id = 0, WECHAT_READ, 0
        else:
            if is_send:
                status = WECHAT_SENDING if fresh else WECHAT_FAILED if rng.random() < 0.002 else WECHAT_SENT
            else:
                status = WECHAT_UNREAD if fresh else WECHAT_READ
            server_id = rng.getrandbits(63)
            if members and not is_send and msg_type != WECHAT_VOICE:
                content = f"{sender}:\n{content}"  # group messages name their sender inline
        # WeChat shows a time divider when a chat was quiet for three minutes.
        show_timer = int(create_time - self._last_time.get(chat.username, 0) > 180_000)
        self._last_time[chat.username] = create_time
        self._seq += 1
        return (server_id, msg_type, status, int(is_send), show_timer, create_time, chat.username,
                content, img_path, lvbuffer, chat.contact_id, self._seq)

    def _image(self, chat, sender, create_time):
        rng = self._rng
        size = rng.randint(20_000, 900_000)
        md5 = _hex(rng, 16)
        xml = (f'<?xml version="1.0"?>\n<msg>\n\t<img aeskey="{_hex(rng, 16)}" encryver="1" '
               f'cdnthumbaeskey="{_hex(rng, 16)}" cdnthumburl="{_hex(rng, 60)}" cdnthumblength="{size // 60}" '
               f'cdnthumbheight="120" cdnthumbwidth="90" cdnmidimgurl="{_hex(rng, 60)}" length="{size}" '
               f'md5="{md5}" />\n</msg>\n')
        return WECHAT_IMAGE, xml, f"THUMBNAIL_DIRPATH://th_{_hex(rng, 16)}", _lv_buffer(size, md5, 1080, 1920)

    def _voice(self, chat, sender, create_time):
        millis = self._rng.randint(900, 59_000)
        path = f"{create_time // 1000}{_hex(self._rng, 6)}"
        return WECHAT_VOICE, f"{sender}:{millis}:0\n", path, None

    def _video(self, chat, sender, create_time):
        rng = self._rng
        xml = (f'<?xml version="1.0"?>\n<msg>\n\t<videomsg aeskey="{_hex(rng, 16)}" cdnthumburl="{_hex(rng, 60)}" '
               f'length="{rng.randint(10**6, 5 * 10**7)}" playlength="{rng.randint(3, 300)}" '
               f'md5="{_hex(rng, 16)}" fromusername="{sender}" />\n</msg>\n')
        return WECHAT_VIDEO, xml, _hex(rng, 16), _lv_buffer(rng.randint(3, 300), "mp4")

    def _sticker(self, chat, sender, create_time):
        rng = self._rng
        md5 = _hex(rng, 16)
        xml = (f'<msg><emoji fromusername="{sender}" tousername="{chat.username}" type="2" md5="{md5}" '
               f'len="{rng.randint(5_000, 400_000)}" productid="" cdnurl="http://wxapp.tc.qq.com/262/20304/'
               f'stodownload?m={md5}&amp;filekey={_hex(rng, 16)}&amp;bizid=1023" width="240" height="240" /></msg>')
        return WECHAT_STICKER, xml, None, None

    def _app(self, chat, sender, create_time):
        rng = self._rng
        title = _pick(rng, _WECHAT_APP_TITLES)
        xml = (f'<?xml version="1.0"?>\n<msg>\n\t<appmsg appid="" sdkver="0">\n\t\t<title>{title}</title>\n'
               f"\t\t<des>{_pick(rng, self._texts)}</des>\n\t\t<type>5</type>\n"
               f"\t\t<url>{_url(rng, _CHINESE)}&amp;chksm={_hex(rng, 32)}&amp;scene=58#rd</url>\n"
               f"\t\t<thumburl>https://mmbiz.qpic.cn/mmbiz_jpg/{_hex(rng, 40)}/640</thumburl>\n"
               f"\t\t<sourceusername>{_pick(rng, _OFFICIAL_ACCOUNTS)[0]}</sourceusername>\n\t</appmsg>\n"
               f"\t<fromusername>{sender}</fromusername>\n\t<scene>0</scene>\n</msg>\n")
        return WECHAT_APP, xml, None, _lv_buffer(0, title)

    def _system(self, chat, sender, create_time):
        rng = self._rng
        if chat.members:
            a, b = rng.sample(chat.members, 2) if len(chat.members) > 1 else chat.members * 2
            text = _pick(rng, _WECHAT_GROUP_NOTICES).format(a=a.nickname, b=b.nickname, group=_pick(rng, _GROUP_NAMES))
        else:
            text = _pick(rng, _WECHAT_PRIVATE_NOTICES).format(a=chat.nickname)
        return WECHAT_SYSTEM, text, None, None

    def _long(self, chat, sender, create_time):
        return WECHAT_TEXT, _long_text(self._rng, self._texts), None, None


def _wechat_message_rows(rng, composer, chats, count) -> Iterator[tuple]:
    """`count` rows over bursty time, busier chats chosen more often (as in a real phone)."""
    chats = rng.sample(chats, len(chats))  # which chat is the busiest is down to chance
    weights = list(itertools.accumulate(1 / (rank + 1) ** 0.8 for rank in range(len(chats))))
    create_time = _WECHAT_START_MS
    for chat in rng.choices(chats, cum_weights=weights, k=count):
        # Nine gaps in ten are within a conversation, the rest are pauses between them.
        create_time += 1000 + int(rng.expovariate(1 / 40_000 if rng.random() < 0.9 else 1 / 1_200_000))
        yield composer.row(chat, create_time, fresh=False)


# Messages of chat ?1 newer than the last one we sent; walks the talker index backwards, not the chat.
_AFTER_OUR_LAST_REPLY = ("msgId > coalesce((SELECT msgId FROM message WHERE talker = ?1 AND isSend = 1"
                         " ORDER BY msgId DESC LIMIT 1), 0)")


def _wechat_mark_unread(db: apsw.Connection, rng: random.Random, usernames: Iterable[str]) -> None:
    """Leave the tail of some chats unread: the received messages after the last one we sent."""
    for username in usernames:
        if rng.random() < 0.4:
            db.execute(
                "UPDATE message SET status = ?2 WHERE msgId IN (SELECT msgId FROM message WHERE talker = ?1"
                f" AND isSend = 0 AND type != ?3 AND {_AFTER_OUR_LAST_REPLY} ORDER BY msgId DESC LIMIT ?4)",
                (username, WECHAT_UNREAD, WECHAT_SYSTEM, rng.randint(1, 30)))


def _wechat_digest(msg_type: int, content: str | None, is_group: bool) -> tuple[str, str]:
    """(digest, digestUser) as the chat list shows the last message."""
    content = content or ""
    sender = ""
    if is_group and ":\n" in content:
        sender, content = content.split(":\n", 1)
    if msg_type == WECHAT_APP:
        start = content.find("<title>")
        digest = "[链接] " + content[start + 7: content.find("</title>")] if start >= 0 else "[链接]"
    else:
        digest = _WECHAT_DIGESTS.get(msg_type, content[:100])
    return digest, sender


def _wechat_refresh_conversation(db: apsw.Connection, username: str) -> None:
    """Recompute a chat-list row from the chat's messages, as WeChat does after deletes."""
    (count,) = db.execute("SELECT count(*) FROM message WHERE talker = ?", (username,)).fetchone()
    (unread,) = db.execute(
        f"SELECT count(*) FROM message WHERE talker = ?1 AND isSend = 0 AND status = ?2 AND {_AFTER_OUR_LAST_REPLY}",
        (username, WECHAT_UNREAD)).fetchone()
    last = db.execute("SELECT type, status, isSend, createTime, content FROM message WHERE talker = ?"
                      " ORDER BY createTime DESC, msgId DESC LIMIT 1", (username,)).fetchone()
    _wechat_save_conversation(db, username, count, unread, last or (WECHAT_TEXT, 0, 0, 0, ""), add=False)


def _wechat_save_conversation(db: apsw.Connection, username: str, count: int, unread: int, last: tuple, *,
                              add: bool) -> None:
    """Show message `last` (type, status, isSend, createTime, content) as the chat's latest.

    With `add`, `count` and `unread` are added to the stored numbers, except that a message of
    ours resets the unread count: replying means the chat was read.
    """
    msg_type, status, is_send, create_time, content = last
    digest, digest_user = _wechat_digest(msg_type, content, username.endswith("@chatroom"))
    counts = ("msgCount = msgCount + excluded.msgCount, unReadCount = CASE WHEN excluded.isSend THEN 0"
              " ELSE unReadCount + excluded.unReadCount END" if add else
              "msgCount = excluded.msgCount, unReadCount = excluded.unReadCount")
    db.execute(
        "INSERT INTO rconversation (username, msgCount, unReadCount, status, isSend, conversationTime,"
        " content, msgType, digest, digestUser, hasTrunc, flag) VALUES (?,?,?,?,?,?,?,?,?,?,1,?)"
        f" ON CONFLICT (username) DO UPDATE SET {counts}, status = excluded.status, isSend = excluded.isSend,"
        " conversationTime = excluded.conversationTime, content = excluded.content, msgType = excluded.msgType,"
        " digest = excluded.digest, digestUser = excluded.digestUser, flag = excluded.flag",
        (username, count, unread, status, is_send, create_time, content, str(msg_type), digest,
         digest_user, create_time))


def create_wechat(path, *, messages=200, chats=12, seed=0) -> None:
    """WeChat Android EnMicroMsg.db-like database (plain SQLite, not SQLCipher)."""
    rng = random.Random(seed)
    with _new_database(path) as db:
        _bulk_load_pragmas(db)
        db.execute(f"PRAGMA user_version = {_WECHAT_USER_VERSION}")
        with db:
            db.execute(_WECHAT_SCHEMA)
            me = "wxid_" + "".join(rng.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=14))
            chat_list = _wechat_contacts(db, rng, chats, me)
            names = [c.nickname for c in chat_list] + [m.nickname for c in chat_list for m in c.members]
            texts = _text_pool(rng, _CHINESE, names, 8192)
            composer = _WeChatComposer(rng, me, texts, seq=rng.randint(10**8, 6 * 10**8))
            if chat_list:
                db.executemany(_WECHAT_INSERT_MESSAGE, _wechat_message_rows(rng, composer, chat_list, messages))
            talkers = [row[0] for row in db.execute("SELECT DISTINCT talker FROM message")]
            _wechat_mark_unread(db, rng, talkers)
            for talker in talkers:
                _wechat_refresh_conversation(db, talker)


def _wechat_account(db: apsw.Connection) -> str:
    return db.execute("SELECT value FROM userinfo WHERE id = 2").fetchone()[0]


def _wechat_load_chats(db: apsw.Connection) -> list[_WeChatChat]:
    """Chats the account can write to: friends and chatrooms, current conversations first."""
    nicknames = dict(db.execute("SELECT username, nickname FROM rcontact"))
    members = {room: tuple(_WeChatContact(m, nicknames.get(m, m)) for m in memberlist.split(";")[1:])
               for room, memberlist in db.execute("SELECT chatroomname, memberlist FROM chatroom")}
    rows = db.execute(
        "SELECT c.username, c.rowid, c.nickname FROM rcontact c LEFT JOIN rconversation v USING (username)"
        " WHERE c.type = 3 AND c.verifyFlag = 0 AND c.username NOT IN ('weixin', 'filehelper')"
        " AND c.username != (SELECT value FROM userinfo WHERE id = 2)"
        " ORDER BY v.username IS NULL, c.rowid")
    return [_WeChatChat(username, rowid, nickname, members.get(username, ())) for username, rowid, nickname in rows]


def wechat_new_messages(db: apsw.Connection, rng: random.Random, n: int) -> list[int]:
    """Receive and send `n` messages in random chats; update the chat list. Returns their msgIds."""
    chats = _wechat_load_chats(db)
    listed = {username for (username,) in db.execute("SELECT username FROM rconversation")}
    active = [chat for chat in chats if chat.username in listed]
    last_time, last_seq = db.execute(
        "SELECT (SELECT max(createTime) FROM message), (SELECT msgSeq FROM message ORDER BY msgId DESC LIMIT 1)"
    ).fetchone()
    texts = _text_pool(rng, _CHINESE, [c.nickname for c in chats], 32 + n)
    composer = _WeChatComposer(rng, _wechat_account(db), texts, seq=last_seq or rng.randint(10**8, 6 * 10**8))
    create_time = max(last_time or _WECHAT_START_MS, _WECHAT_START_MS)
    ids = []
    with db:
        for _ in range(n):
            # Most traffic is in chats already on the list; now and then an old friend writes.
            chat = _pick(rng, active if active and rng.random() < 0.9 else chats)
            create_time += 1000 + int(rng.expovariate(1 / 40_000))
            row = composer.row(chat, create_time, fresh=True)
            db.execute(_WECHAT_INSERT_MESSAGE, row)
            ids.append(db.last_insert_rowid())
            _, msg_type, status, is_send, _, create_time, _, content, *_ = row  # see _WECHAT_INSERT_MESSAGE
            _wechat_save_conversation(db, chat.username, 1, 1 - is_send,
                                      (msg_type, status, is_send, create_time, content), add=True)
    return ids


def wechat_recall(db: apsw.Connection, rng: random.Random, msg_id: int | None = None) -> int:
    """Recall a message: WeChat rewrites the row in place into a type-10000 notice. Returns its msgId."""
    with db:
        if msg_id is None:
            msg_id = _recent_key(db, rng, "message", "msgId", f"type != {WECHAT_SYSTEM}")
        talker, is_send, content = db.execute(
            "SELECT talker, isSend, content FROM message WHERE msgId = ?", (msg_id,)).fetchone()
        if is_send:
            notice = "你撤回了一条消息"
        else:
            sender = content.split(":\n", 1)[0] if talker.endswith("@chatroom") and content else talker
            row = db.execute("SELECT coalesce(nullif(conRemark, ''), nickname) FROM rcontact WHERE username = ?",
                             (sender,)).fetchone()
            notice = f'"{row[0] if row else sender}" 撤回了一条消息'
        db.execute("UPDATE message SET type = ?, content = ?, imgPath = NULL WHERE msgId = ?",
                   (WECHAT_SYSTEM, notice, msg_id))
        _wechat_refresh_conversation(db, talker)
    return msg_id


def wechat_delete_chat(db: apsw.Connection, rng: random.Random, talker: str | None = None) -> str:
    """Delete a whole chat: its messages and its chat-list row. Returns the talker."""
    with db:
        if talker is None:
            talkers = [row[0] for row in db.execute("SELECT username FROM rconversation ORDER BY rowid")]
            if not talkers:
                raise LookupError("no conversation to delete")
            talker = _pick(rng, talkers)
        db.execute("DELETE FROM message WHERE talker = ?", (talker,))
        db.execute("DELETE FROM rconversation WHERE username = ?", (talker,))
    return talker


def wechat_delete_newest(db: apsw.Connection, rng: random.Random, n: int) -> list[int]:
    """Delete the newest `n` messages, so that the next new message reuses their msgIds."""
    with db:
        rows = db.execute("SELECT msgId, talker FROM message ORDER BY msgId DESC LIMIT ?", (n,)).fetchall()
        db.executemany("DELETE FROM message WHERE msgId = ?", [(msg_id,) for msg_id, _ in rows])
        for talker in sorted({talker for _, talker in rows}):
            _wechat_refresh_conversation(db, talker)
    return sorted(msg_id for msg_id, _ in rows)


# A receipt or a read-state sync moves a message between its pending and settled status.
_WECHAT_STATUS_FLIP = {WECHAT_SENDING: WECHAT_SENT, WECHAT_SENT: WECHAT_SENDING, WECHAT_FAILED: WECHAT_SENT,
                       WECHAT_UNREAD: WECHAT_READ, WECHAT_READ: WECHAT_UNREAD}


def wechat_status_churn(db: apsw.Connection, rng: random.Random, n: int) -> int:
    """Change the status of `n` random non-system messages. Returns how many changed."""
    with db:
        ids = _random_keys(db, rng, "message", "msgId", n, f"type != {WECHAT_SYSTEM}")
        for msg_id in ids:
            (status,) = db.execute("SELECT status FROM message WHERE msgId = ?", (msg_id,)).fetchone()
            db.execute("UPDATE message SET status = ? WHERE msgId = ?",
                       (_WECHAT_STATUS_FLIP.get(status, WECHAT_READ), msg_id))
    return len(ids)


# -----------------------------------------------------------------------------------------
# iMessage (macOS chat.db / iOS sms.db)
# -----------------------------------------------------------------------------------------

_APPLE_EPOCH = 978_307_200  # 2001-01-01 in Unix seconds; iMessage dates count ns from here
_IMESSAGE_START_NS = 662_688_000 * 10**9  # 2022-01-01
_IMESSAGE_USER_VERSION = 18026  # the client's schema version, carried as-is by a mirror
_IMESSAGE_ME = "me@icloud.com"

_IMESSAGE_MESSAGE_COLUMNS = """
  ROWID INTEGER PRIMARY KEY AUTOINCREMENT, guid TEXT UNIQUE NOT NULL, text TEXT,
  replace INTEGER DEFAULT 0, service_center TEXT, handle_id INTEGER DEFAULT 0, subject TEXT,
  country TEXT, attributedBody BLOB, version INTEGER DEFAULT 0, type INTEGER DEFAULT 0,
  service TEXT, account TEXT, account_guid TEXT, error INTEGER DEFAULT 0, date INTEGER,
  date_read INTEGER, date_delivered INTEGER, is_delivered INTEGER DEFAULT 0,
  is_finished INTEGER DEFAULT 0, is_emote INTEGER DEFAULT 0, is_from_me INTEGER DEFAULT 0,
  is_empty INTEGER DEFAULT 0, is_delayed INTEGER DEFAULT 0, is_auto_reply INTEGER DEFAULT 0,
  is_prepared INTEGER DEFAULT 0, is_read INTEGER DEFAULT 0, is_system_message INTEGER DEFAULT 0,
  is_sent INTEGER DEFAULT 0, has_dd_results INTEGER DEFAULT 0, is_service_message INTEGER DEFAULT 0,
  is_forward INTEGER DEFAULT 0, was_downgraded INTEGER DEFAULT 0, is_archive INTEGER DEFAULT 0,
  cache_has_attachments INTEGER DEFAULT 0, cache_roomnames TEXT, was_data_detected INTEGER DEFAULT 0,
  was_deduplicated INTEGER DEFAULT 0, is_audio_message INTEGER DEFAULT 0, is_played INTEGER DEFAULT 0,
  date_played INTEGER, item_type INTEGER DEFAULT 0, other_handle INTEGER DEFAULT 0, group_title TEXT,
  group_action_type INTEGER DEFAULT 0, share_status INTEGER DEFAULT 0,
  share_direction INTEGER DEFAULT 0, is_expirable INTEGER DEFAULT 0, expire_state INTEGER DEFAULT 0,
  message_action_type INTEGER DEFAULT 0, message_source INTEGER DEFAULT 0,
  associated_message_guid TEXT, associated_message_type INTEGER DEFAULT 0, balloon_bundle_id TEXT,
  payload_data BLOB, expressive_send_style_id TEXT,
  associated_message_range_location INTEGER DEFAULT 0,
  associated_message_range_length INTEGER DEFAULT 0, time_expressive_send_played INTEGER,
  message_summary_info BLOB, ck_sync_state INTEGER DEFAULT 0, ck_record_id TEXT,
  ck_record_change_tag TEXT, destination_caller_id TEXT, is_corrupt INTEGER DEFAULT 0,
  reply_to_guid TEXT, sort_id INTEGER, is_spam INTEGER DEFAULT 0, has_unseen_mention INTEGER DEFAULT 0,
  thread_originator_guid TEXT, thread_originator_part TEXT, syndication_ranges TEXT,
  synced_syndication_ranges TEXT, was_delivered_quietly INTEGER DEFAULT 0,
  did_notify_recipient INTEGER DEFAULT 0, date_retracted INTEGER DEFAULT 0,
  date_edited INTEGER DEFAULT 0, was_detonated INTEGER DEFAULT 0, part_count INTEGER,
  is_stewie INTEGER DEFAULT 0, is_kt_verified INTEGER DEFAULT 0, is_sos INTEGER DEFAULT 0,
  is_critical INTEGER DEFAULT 0, bia_reference_id TEXT DEFAULT NULL, fallback_hash TEXT DEFAULT NULL,
  associated_message_emoji TEXT DEFAULT NULL, is_pending_satellite_send INTEGER DEFAULT 0,
  needs_relay INTEGER DEFAULT 0, schedule_type INTEGER DEFAULT 0, schedule_state INTEGER DEFAULT 0,
  sent_or_received_off_grid INTEGER DEFAULT 0"""

_IMESSAGE_SCHEMA = f"""
CREATE TABLE _SqliteDatabaseProperties (key TEXT, value TEXT, UNIQUE(key));
CREATE TABLE deleted_messages (ROWID INTEGER PRIMARY KEY AUTOINCREMENT UNIQUE, guid TEXT NOT NULL);
CREATE TABLE handle (ROWID INTEGER PRIMARY KEY AUTOINCREMENT UNIQUE, id TEXT NOT NULL, country TEXT,
  service TEXT NOT NULL, uncanonicalized_id TEXT, person_centric_id TEXT, UNIQUE (id, service));
CREATE TABLE chat (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, guid TEXT UNIQUE NOT NULL, style INTEGER,
  state INTEGER, account_id TEXT, properties BLOB, chat_identifier TEXT, service_name TEXT,
  room_name TEXT, account_login TEXT, is_archived INTEGER DEFAULT 0, last_addressed_handle TEXT,
  display_name TEXT, group_id TEXT, is_filtered INTEGER DEFAULT 0, successful_query INTEGER,
  last_read_message_timestamp INTEGER DEFAULT 0);
CREATE TABLE message ({_IMESSAGE_MESSAGE_COLUMNS});
CREATE TABLE attachment (ROWID INTEGER PRIMARY KEY AUTOINCREMENT, guid TEXT UNIQUE NOT NULL,
  created_date INTEGER DEFAULT 0, start_date INTEGER DEFAULT 0, filename TEXT, uti TEXT,
  mime_type TEXT, transfer_state INTEGER DEFAULT 0, is_outgoing INTEGER DEFAULT 0, user_info BLOB,
  transfer_name TEXT, total_bytes INTEGER DEFAULT 0, is_sticker INTEGER DEFAULT 0,
  sticker_user_info BLOB, attribution_info BLOB, hide_attachment INTEGER DEFAULT 0,
  ck_sync_state INTEGER DEFAULT 0, ck_server_change_token_blob BLOB, ck_record_id TEXT,
  original_guid TEXT UNIQUE NOT NULL);
CREATE TABLE chat_handle_join (chat_id INTEGER REFERENCES chat (ROWID) ON DELETE CASCADE,
  handle_id INTEGER REFERENCES handle (ROWID) ON DELETE CASCADE, UNIQUE(chat_id, handle_id));
CREATE TABLE chat_message_join (chat_id INTEGER REFERENCES chat (ROWID) ON DELETE CASCADE,
  message_id INTEGER REFERENCES message (ROWID) ON DELETE CASCADE, message_date INTEGER DEFAULT 0,
  PRIMARY KEY (chat_id, message_id));
CREATE TABLE message_attachment_join (message_id INTEGER REFERENCES message (ROWID) ON DELETE CASCADE,
  attachment_id INTEGER REFERENCES attachment (ROWID) ON DELETE CASCADE, UNIQUE(message_id, attachment_id));
CREATE INDEX message_idx_handle ON message(handle_id, date);
CREATE INDEX message_idx_is_read ON message(is_read, is_from_me, is_finished);
CREATE INDEX message_idx_associated_message ON message(associated_message_guid);
CREATE INDEX chat_message_join_idx_message_id_only ON chat_message_join(message_id);
CREATE INDEX chat_message_join_idx_message_date_id_chat_id ON chat_message_join(chat_id, message_date, message_id);
CREATE INDEX message_attachment_join_idx_message_id ON message_attachment_join(message_id);
CREATE INDEX chat_idx_chat_identifier_service_name ON chat(chat_identifier, service_name);
CREATE TRIGGER add_to_deleted_messages AFTER DELETE ON message BEGIN
  INSERT INTO deleted_messages (guid) VALUES (OLD.guid); END;
CREATE TRIGGER after_delete_on_message AFTER DELETE ON message BEGIN
  DELETE FROM chat_message_join WHERE message_id = OLD.ROWID;
  DELETE FROM message_attachment_join WHERE message_id = OLD.ROWID; END;
CREATE TRIGGER after_delete_on_message_attachment_join AFTER DELETE ON message_attachment_join BEGIN
  DELETE FROM attachment WHERE attachment.ROWID = OLD.attachment_id
    AND (SELECT 1 FROM message_attachment_join WHERE attachment_id = OLD.attachment_id LIMIT 1) IS NULL; END;
"""
_IMESSAGE_INSERT_MESSAGE = (
    "INSERT INTO message (ROWID, guid, text, handle_id, attributedBody, service, account, account_guid,"
    " date, date_read, date_delivered, is_delivered, is_finished, is_from_me, is_read, is_sent,"
    " has_dd_results, cache_has_attachments, associated_message_guid, associated_message_type,"
    " destination_caller_id, part_count, sort_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,1,?,?,?,?,?,?,?,?,1,0)")
_IMESSAGE_TAPBACKS = ((2000, "Loved"), (2001, "Liked"), (2003, "Laughed at"), (2004, "Emphasized"))
_GROUP_TITLES = ("Weekend Plans", "Family", "Book Club", "Roommates", "", "")
_FIRST_NAMES = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy")


class _IMessageChat(NamedTuple):
    rowid: int
    handles: tuple[int, ...]  # handle ROWIDs of the other participants
    service: str


def _typedstream(text: str) -> bytes:
    """An NSAttributedString archived the way Messages stores `attributedBody`."""
    def length(n: int) -> bytes:
        if n < 0x80:
            return bytes([n])
        return b"\x81" + n.to_bytes(2, "little") if n < 0x10000 else b"\x82" + n.to_bytes(4, "little")
    data = text.encode()
    return (b"\x04\x0bstreamtyped\x81\xe8\x03\x84\x01@\x84\x84\x84\x12NSAttributedString\x00\x84\x84"
            b"\x08NSObject\x00\x85\x92\x84\x84\x84\x08NSString\x01\x94\x84\x01+" + length(len(data)) + data
            + b"\x86\x84\x02iI\x01" + length(len(text.encode("utf-16-le")) // 2)
            + b"\x92\x84\x84\x84\x0cNSDictionary\x00\x94\x84\x01i\x01\x92\x84\x96\x96\x1d"
              b"__kIMMessagePartAttributeName\x86\x92\x84\x84\x84\x08NSNumber\x00\x84\x84\x07NSValue"
              b"\x00\x94\x84\x01*\x84\x99\x99\x00\x86\x86\x86")


def _apple_guid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4)).upper()


def _imessage_contacts(db: apsw.Connection, rng: random.Random, chats: int) -> list[_IMessageChat]:
    """Fill handle, chat, chat_handle_join and the properties table; return the chats."""
    handles = _imessage_handles(db, rng, max(2, chats + 2))
    partners = iter(rng.sample(handles, len(handles)))  # one direct chat per handle
    result = [_imessage_group_chat(db, rng, chat_id, handles) if chat_id % 4 == 0  # every fourth is a group
              else _imessage_direct_chat(db, rng, chat_id, next(partners))
              for chat_id in range(1, chats + 1)]
    for chat in result:
        db.executemany("INSERT INTO chat_handle_join VALUES (?,?)", [(chat.rowid, h) for h in chat.handles])
    db.executemany("INSERT INTO _SqliteDatabaseProperties VALUES (?,?)", [
        ("counter_in_all", "0"), ("_ClientVersion", str(_IMESSAGE_USER_VERSION)),
        ("_UniqueIdentifier", _apple_guid(rng))])
    return result


def _imessage_handles(db: apsw.Connection, rng: random.Random, count: int) -> list[tuple[int, str, str]]:
    """(ROWID, id, service) of `count` new handles: mostly phone numbers, some Apple IDs."""
    rows = []
    for rowid in range(1, count + 1):
        if rng.random() < 0.7:
            number = f"+1{rng.randint(200, 989)}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}"
            rows.append((rowid, number, "us", "SMS" if rng.random() < 0.1 else "iMessage"))
        else:
            email = f"{_FIRST_NAMES[rowid % len(_FIRST_NAMES)]}{rng.randint(1, 99)}@icloud.com"
            rows.append((rowid, email, None, "iMessage"))
    db.executemany("INSERT INTO handle (ROWID, id, country, service) VALUES (?,?,?,?)", rows)
    return [(rowid, handle, service) for rowid, handle, _, service in rows]


def _imessage_direct_chat(db: apsw.Connection, rng: random.Random, chat_id: int,
                          partner: tuple[int, str, str]) -> _IMessageChat:
    handle_id, handle, service = partner
    db.execute("INSERT INTO chat (ROWID, guid, style, state, account_id, chat_identifier, service_name,"
               " account_login, display_name) VALUES (?,?,45,3,?,?,?,?,'')",
               (chat_id, f"{service};-;{handle}", _apple_guid(rng), handle, service, f"E:{_IMESSAGE_ME}"))
    return _IMessageChat(chat_id, (handle_id,), service)


def _imessage_group_chat(db: apsw.Connection, rng: random.Random, chat_id: int,
                         handles: list[tuple[int, str, str]]) -> _IMessageChat:
    members = sorted(rng.sample([rowid for rowid, _, _ in handles], min(len(handles), rng.randint(2, 5))))
    room = f"chat{rng.randint(10**17, 10**18 - 1)}"
    db.execute("INSERT INTO chat (ROWID, guid, style, state, account_id, chat_identifier, service_name,"
               " room_name, account_login, display_name, group_id) VALUES (?,?,43,3,?,?,'iMessage',?,?,?,?)",
               (chat_id, f"iMessage;+;{room}", _apple_guid(rng), room, room, f"E:{_IMESSAGE_ME}",
                _pick(rng, _GROUP_TITLES), _apple_guid(rng)))
    return _IMessageChat(chat_id, tuple(members), "iMessage")


def _imessage_load_chats(db: apsw.Connection) -> list[_IMessageChat]:
    members: dict[int, list[int]] = {}
    for chat_id, handle_id in db.execute("SELECT chat_id, handle_id FROM chat_handle_join ORDER BY rowid"):
        members.setdefault(chat_id, []).append(handle_id)
    return [_IMessageChat(rowid, tuple(members.get(rowid, ())), service)
            for rowid, service in db.execute("SELECT ROWID, service_name FROM chat ORDER BY ROWID")]


class _IMessageComposer:
    """Builds message, chat_message_join and attachment rows as Messages stores them."""

    def __init__(self, rng: random.Random, texts: tuple[str, ...], account_guid: str):
        self._rng, self._texts, self._account_guid = rng, texts, account_guid
        self._recent: dict[int, str] = {}  # chat ROWID -> guid of its latest message, for tapbacks

    def message(self, rowid: int, chat: _IMessageChat, date: int) -> tuple[tuple, tuple, tuple | None]:
        """(message row, chat_message_join row, attachment row or None) for a new message."""
        rng = self._rng
        from_me = rng.random() < 0.45
        handle = chat.handles[0] if len(chat.handles) == 1 else (0 if from_me else _pick(rng, chat.handles or (0,)))
        guid = _apple_guid(rng)
        kind = rng.random()
        associated_guid, associated_type, attachment = None, 0, None
        if kind < 0.03 and chat.rowid in self._recent:
            code, verb = _pick(rng, _IMESSAGE_TAPBACKS)
            associated_guid, associated_type = f"p:0/{self._recent[chat.rowid]}", code
            text = f"{verb} “{_pick(rng, self._texts)}”"
        elif kind < 0.08:
            text = "\ufffc"  # the attachment's placeholder character in the text
            attachment = self._attachment(rowid, from_me, date)
        else:
            text = _pick(rng, self._texts)
        self._recent[chat.rowid] = guid
        date_read = 0 if from_me else date + rng.randint(1, 3600) * 10**9
        date_delivered = date + rng.randint(1, 5) * 10**9 if from_me else 0
        # In the column order of _IMESSAGE_INSERT_MESSAGE.
        message = (rowid, guid, text, handle, _typedstream(text), chat.service, f"E:{_IMESSAGE_ME}",
                   self._account_guid, date, date_read, date_delivered, 1, int(from_me), int(not from_me),
                   int(from_me), int("http" in text), int(attachment is not None), associated_guid,
                   associated_type, _IMESSAGE_ME)
        return message, (chat.rowid, rowid, date), attachment

    def _attachment(self, message_id: int, from_me: bool, date: int) -> tuple:
        rng = self._rng
        guid = _apple_guid(rng)
        name = f"IMG_{rng.randint(1000, 9999)}.HEIC"
        path = f"~/Library/Messages/Attachments/{_hex(rng, 1)}/{rng.randint(0, 15):02d}/{guid}/{name}"
        return (guid, date // 10**9, date // 10**9, path, "public.heic", "image/heic", 5, int(from_me), name,
                rng.randint(200_000, 4_000_000), guid, message_id)


def _imessage_stream(rng: random.Random, composer: _IMessageComposer, chats: list[_IMessageChat],
                     first_rowid: int, count: int, date: int) -> Iterator[tuple[tuple, tuple, tuple | None]]:
    """`count` messages after `date`, in random chats, a minute and a half apart on average."""
    for rowid in range(first_rowid, first_rowid + count):
        date += (1 + int(rng.expovariate(1 / 90))) * 10**9
        yield composer.message(rowid, _pick(rng, chats), date)


def _imessage_write(db: apsw.Connection, composed: Iterable[tuple[tuple, tuple, tuple | None]]) -> None:
    """Insert composed messages with their join and attachment rows, in batches."""
    for batch in _batched(composed, BATCH_ROWS):
        db.executemany(_IMESSAGE_INSERT_MESSAGE, [message for message, _, _ in batch])
        db.executemany("INSERT INTO chat_message_join VALUES (?,?,?)", [join for _, join, _ in batch])
        for *attachment, message_id in (a for _, _, a in batch if a):
            db.execute("INSERT INTO attachment (guid, created_date, start_date, filename, uti, mime_type,"
                       " transfer_state, is_outgoing, transfer_name, total_bytes, original_guid)"
                       " VALUES (?,?,?,?,?,?,?,?,?,?,?)", attachment)
            db.execute("INSERT INTO message_attachment_join VALUES (?,?)", (message_id, db.last_insert_rowid()))


def create_imessage(path, *, messages=200, chats=8, seed=0) -> None:
    """iMessage chat.db-like database: message, handle, chat, join tables, attachments, triggers."""
    rng = random.Random(seed)
    with _new_database(path) as db:
        _bulk_load_pragmas(db)
        db.execute(f"PRAGMA user_version = {_IMESSAGE_USER_VERSION}")
        with db:
            db.execute(_IMESSAGE_SCHEMA)
            chat_list = _imessage_contacts(db, rng, chats)
            texts = _text_pool(rng, _ENGLISH, [n.title() for n in _FIRST_NAMES], 8192)
            composer = _IMessageComposer(rng, texts, _apple_guid(rng))
            if chat_list:
                _imessage_write(db, _imessage_stream(rng, composer, chat_list, 1, messages, _IMESSAGE_START_NS))


def imessage_new_messages(db: apsw.Connection, rng: random.Random, n: int) -> list[int]:
    """Send and receive `n` messages in random chats. Returns their ROWIDs."""
    chats = _imessage_load_chats(db)
    if not chats:
        raise LookupError("no chat to write to")
    # AUTOINCREMENT never reuses a ROWID, even after the newest message was deleted.
    next_rowid, date = db.execute(
        "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'message'), 0),"
        " coalesce((SELECT max(ROWID) FROM message), 0)) + 1, (SELECT max(date) FROM message)").fetchone()
    account = db.execute("SELECT account_guid FROM message WHERE account_guid IS NOT NULL LIMIT 1").fetchone()
    texts = _text_pool(rng, _ENGLISH, [n.title() for n in _FIRST_NAMES], 32 + n)
    composer = _IMessageComposer(rng, texts, account[0] if account else _apple_guid(rng))
    composed = list(_imessage_stream(rng, composer, chats, next_rowid, n, date or _IMESSAGE_START_NS))
    with db:
        _imessage_write(db, composed)
    return list(range(next_rowid, next_rowid + n))


def imessage_edit(db: apsw.Connection, rng: random.Random, rowid: int | None = None) -> int:
    """Edit one of our own messages as iOS 16+ does. Returns its ROWID.

    `text` becomes NULL, `attributedBody` holds the new text, `date_edited` is set and
    `message_summary_info` (a binary plist) keeps every version under "ec".
    """
    with db:
        if rowid is None:
            rowid = _recent_key(db, rng, "message", "ROWID",
                                "is_from_me = 1 AND associated_message_type = 0 AND cache_has_attachments = 0")
        date, body, summary = db.execute(
            "SELECT date, attributedBody, message_summary_info FROM message WHERE ROWID = ?", (rowid,)).fetchone()
        info = plistlib.loads(summary) if summary else {"ec": {"0": [{"d": date / 1e9 + _APPLE_EPOCH, "t": body}]}}
        # Messages allows edits within 15 minutes of sending.
        edited = date + rng.randint(5, 900) * 10**9
        new_body = _typedstream(_sentence(rng, _ENGLISH, tuple(n.title() for n in _FIRST_NAMES)))
        info["ec"]["0"].append({"d": edited / 1e9 + _APPLE_EPOCH, "t": new_body})
        info["ep"], info["otr"] = [0], {"0": {"le": len(info["ec"]["0"]), "lo": 0}}
        db.execute("UPDATE message SET text = NULL, attributedBody = ?, date_edited = ?,"
                   " message_summary_info = ? WHERE ROWID = ?",
                   (new_body, edited, plistlib.dumps(info, fmt=plistlib.FMT_BINARY), rowid))
    return rowid


def imessage_delete(db: apsw.Connection, rng: random.Random, rowid: int | None = None) -> int:
    """Delete a message; the schema's triggers drop its joins and log its guid. Returns its ROWID."""
    with db:
        if rowid is None:
            rowid = _random_key(db, rng, "message", "ROWID")
        db.execute("DELETE FROM message WHERE ROWID = ?", (rowid,))
    return rowid


# -----------------------------------------------------------------------------------------
# WhatsApp (Android msgstore.db)
# -----------------------------------------------------------------------------------------

WHATSAPP_TEXT, WHATSAPP_IMAGE, WHATSAPP_VOICE, WHATSAPP_SYSTEM, WHATSAPP_REVOKED = 0, 1, 2, 7, 15
_WHATSAPP_USER_VERSION = 1
_WHATSAPP_START_MS = 1_640_995_200_000  # 2022-01-01

_WHATSAPP_SCHEMA = """
CREATE TABLE props (_id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT UNIQUE, value TEXT);
CREATE TABLE jid (_id INTEGER PRIMARY KEY AUTOINCREMENT, user TEXT NOT NULL, server TEXT NOT NULL,
  agent INTEGER, device INTEGER, type INTEGER, raw_string TEXT);
CREATE UNIQUE INDEX jid_key_new_index ON jid (user, server, agent, device);
CREATE TABLE chat (_id INTEGER PRIMARY KEY AUTOINCREMENT, jid_row_id INTEGER UNIQUE, hidden INTEGER,
  subject TEXT, created_timestamp INTEGER, display_message_row_id INTEGER, last_message_row_id INTEGER,
  last_read_message_row_id INTEGER, last_read_receipt_sent_message_row_id INTEGER,
  last_important_message_row_id INTEGER, archived INTEGER, sort_timestamp INTEGER, mod_tag INTEGER,
  gen REAL, spam_detection INTEGER, unseen_earliest_message_received_time INTEGER,
  unseen_message_count INTEGER, unseen_missed_calls_count INTEGER, unseen_row_count INTEGER,
  plaintext_disabled INTEGER, vcard_ui_dismissed INTEGER, change_number_notified_message_row_id INTEGER,
  show_group_description INTEGER, ephemeral_expiration INTEGER, last_read_ephemeral_message_row_id INTEGER,
  ephemeral_setting_timestamp INTEGER, unseen_important_message_count INTEGER NOT NULL DEFAULT 0,
  group_type INTEGER NOT NULL DEFAULT 0);
CREATE TABLE message (_id INTEGER PRIMARY KEY AUTOINCREMENT, chat_row_id INTEGER NOT NULL,
  from_me INTEGER NOT NULL, key_id TEXT NOT NULL, sender_jid_row_id INTEGER, status INTEGER,
  broadcast INTEGER, recipient_count INTEGER, participant_hash TEXT, origination_flags INTEGER,
  origin INTEGER, timestamp INTEGER, received_timestamp INTEGER, receipt_server_timestamp INTEGER,
  message_type INTEGER, text_data TEXT, starred INTEGER, lookup_tables INTEGER,
  sort_id INTEGER NOT NULL DEFAULT 0, message_add_on_flags INTEGER, view_mode INTEGER);
CREATE UNIQUE INDEX message_key_index ON message (chat_row_id, from_me, key_id, sender_jid_row_id);
CREATE INDEX message_sort_id_index ON message (chat_row_id, sort_id);
CREATE INDEX message_starred_index ON message (starred, chat_row_id);
CREATE TABLE message_media (message_row_id INTEGER PRIMARY KEY, chat_row_id INTEGER,
  autotransfer_retry_enabled INTEGER, multicast_id TEXT, media_job_uuid TEXT, transferred INTEGER,
  transcoded INTEGER, file_path TEXT, file_size INTEGER, suspicious_content INTEGER, trim_from INTEGER,
  trim_to INTEGER, face_x INTEGER, face_y INTEGER, media_key BLOB, media_key_timestamp INTEGER,
  width INTEGER, height INTEGER, has_streaming_sidecar INTEGER, gif_attribution INTEGER,
  thumbnail_height_width_ratio REAL, direct_path TEXT, first_scan_sidecar BLOB, first_scan_length INTEGER,
  message_url TEXT, mime_type TEXT, file_length INTEGER, media_name TEXT, file_hash TEXT,
  media_duration INTEGER, page_count INTEGER, enc_file_hash TEXT, partial_media_hash TEXT,
  partial_media_enc_hash TEXT, is_animated_sticker INTEGER, original_file_hash TEXT,
  mute_video INTEGER DEFAULT 0, media_caption TEXT);
CREATE INDEX message_media_chat_index ON message_media (chat_row_id, message_row_id);
CREATE TABLE group_participant_user (_id INTEGER PRIMARY KEY AUTOINCREMENT,
  group_jid_row_id INTEGER NOT NULL, user_jid_row_id INTEGER NOT NULL, rank INTEGER NOT NULL,
  pending INTEGER NOT NULL, add_timestamp INTEGER, add_type INTEGER, label TEXT);
CREATE UNIQUE INDEX group_participant_user_index ON group_participant_user (group_jid_row_id, user_jid_row_id);
CREATE TABLE message_revoked (message_row_id INTEGER PRIMARY KEY, revoked_key_id TEXT NOT NULL,
  admin_jid_row_id INTEGER, revoke_timestamp INTEGER);
CREATE VIRTUAL TABLE message_ftsv2 USING fts5(content, fts_jid, fts_namespace);
"""
_WHATSAPP_INSERT_MESSAGE = (
    "INSERT INTO message (_id, chat_row_id, from_me, key_id, sender_jid_row_id, status, broadcast,"
    " recipient_count, origination_flags, origin, timestamp, received_timestamp, receipt_server_timestamp,"
    " message_type, text_data, starred, lookup_tables, sort_id, message_add_on_flags)"
    " VALUES (?1,?2,?3,?4,?5,?6,0,0,0,0,?7,?8,?9,?10,?11,?12,0,?1,0)")
_WHATSAPP_INSERT_MEDIA = (
    "INSERT INTO message_media (message_row_id, chat_row_id, autotransfer_retry_enabled, transferred,"
    " file_path, file_size, media_key, media_key_timestamp, width, height, thumbnail_height_width_ratio,"
    " direct_path, mime_type, file_length, file_hash, media_duration, enc_file_hash, media_caption)"
    " VALUES (?,?,1,1,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
_WHATSAPP_SUBJECTS = ("Family ❤️", "Football Sunday", "Flat 4B", "Class of 2012", "Book club")
# Status codes: 0 received; for our own messages 4 on the server, 5 delivered, 13 read.
_WHATSAPP_SENT_STATUSES = (4, 5, 5, 13, 13, 13)


class _WhatsAppChat(NamedTuple):
    rowid: int
    jid: str  # raw jid string of the chat
    members: tuple[int, ...]  # jid rows of group members; () for a one-to-one chat


def _whatsapp_contacts(db: apsw.Connection, rng: random.Random, chats: int) -> list[_WhatsAppChat]:
    """Fill jid, chat, group_participant_user and props; return the chats."""
    people = _whatsapp_people(db, rng, max(2, chats * 2))
    result = []
    for index in range(chats):
        created = _WHATSAPP_START_MS - rng.randint(1, 900) * 86_400_000 + index * 1000
        if index % 4 == 3:  # every fourth chat is a group
            jid_row, raw, members = _whatsapp_group(db, rng, people, created)
            subject = _pick(rng, _WHATSAPP_SUBJECTS)
        else:
            (jid_row, raw), members, subject = people[index], (), None
        db.execute("INSERT INTO chat (jid_row_id, hidden, subject, created_timestamp, archived, sort_timestamp,"
                   " gen, unseen_message_count, unseen_row_count, plaintext_disabled) VALUES (?,0,?,?,0,?,?,0,0,1)",
                   (jid_row, subject, created, created, float(rng.randint(1, 3))))
        result.append(_WhatsAppChat(db.last_insert_rowid(), raw, members))
    db.executemany("INSERT INTO props (key, value) VALUES (?,?)", [
        ("fts_ready", "5"), ("md_messages_migrated", "1"), ("message_main_verified", "1"),
        ("db_creation_timestamp", str(_WHATSAPP_START_MS))])
    return result


def _whatsapp_people(db: apsw.Connection, rng: random.Random, count: int) -> list[tuple[int, str]]:
    """(jid _id, raw jid) of `count` new phone-number jids."""
    people = []
    for _ in range(count):
        user = f"{_pick(rng, ('1', '44', '49', '55', '91', '86'))}{rng.randint(10**9, 10**10 - 1)}"
        db.execute("INSERT INTO jid (user, server, agent, device, type, raw_string)"
                   " VALUES (?,'s.whatsapp.net',0,0,0,?)", (user, f"{user}@s.whatsapp.net"))
        people.append((db.last_insert_rowid(), f"{user}@s.whatsapp.net"))
    return people


def _whatsapp_group(db: apsw.Connection, rng: random.Random, people: list[tuple[int, str]],
                    created: int) -> tuple[int, str, tuple[int, ...]]:
    """(jid _id, raw jid, member jid _ids) of a new group, named after its creator and creation time."""
    members = sorted(rng.sample([jid_row for jid_row, _ in people], min(len(people), rng.randint(3, 8))))
    user = f"{people[0][1].split('@')[0]}-{created // 1000}"
    db.execute("INSERT INTO jid (user, server, agent, device, type, raw_string) VALUES (?,'g.us',0,0,1,?)",
               (user, f"{user}@g.us"))
    jid_row = db.last_insert_rowid()
    db.executemany("INSERT INTO group_participant_user (group_jid_row_id, user_jid_row_id, rank, pending,"
                   " add_timestamp) VALUES (?,?,0,0,?)", [(jid_row, m, created) for m in members])
    return jid_row, f"{user}@g.us", tuple(members)


def _whatsapp_load_chats(db: apsw.Connection) -> list[_WhatsAppChat]:
    members: dict[int, list[int]] = {}
    for group, user in db.execute("SELECT group_jid_row_id, user_jid_row_id FROM group_participant_user ORDER BY _id"):
        members.setdefault(group, []).append(user)
    rows = db.execute("SELECT _id, jid_row_id, (SELECT raw_string FROM jid WHERE jid._id = jid_row_id) FROM chat"
                      " ORDER BY _id")
    return [_WhatsAppChat(chat_id, raw, tuple(members.get(jid_row, ()))) for chat_id, jid_row, raw in rows]


class _WhatsAppComposer:
    """Builds message, message_media and message_ftsv2 rows as WhatsApp stores them."""

    def __init__(self, rng: random.Random, texts: tuple[str, ...]):
        self._rng, self._texts = rng, texts

    def message(self, rowid: int, chat: _WhatsAppChat, timestamp: int) -> tuple[tuple, tuple | None, tuple | None]:
        """(message row, media row or None, FTS row or None)."""
        rng = self._rng
        from_me = rng.random() < 0.4
        sender = 0 if from_me or not chat.members else _pick(rng, chat.members)
        kind = rng.random()
        media = None
        if kind < 0.07:
            msg_type, text = WHATSAPP_IMAGE, (_pick(rng, self._texts) if rng.random() < 0.3 else None)
            media = self._media(rowid, chat, timestamp, "image/jpeg", text)
        elif kind < 0.10:
            msg_type, text = WHATSAPP_VOICE, None
            media = self._media(rowid, chat, timestamp, "audio/ogg; codecs=opus", None)
        elif kind < 0.105:
            msg_type, text = WHATSAPP_SYSTEM, None
        else:
            msg_type, text = WHATSAPP_TEXT, _pick(rng, self._texts)
        key_id = _hex(rng, 16).upper() if rng.random() < 0.8 else "3EB0" + _hex(rng, 8).upper()
        status = _pick(rng, _WHATSAPP_SENT_STATUSES) if from_me else 0
        received = timestamp + (0 if from_me else rng.randint(200, 5000))
        server_time = timestamp + rng.randint(100, 900) if from_me else -1
        message = (rowid, chat.rowid, int(from_me), key_id, sender, status, timestamp, received, server_time,
                   msg_type, text, int(rng.random() < 0.003))
        fts = (rowid, text, chat.jid, "message") if text else None
        return message, media, fts

    def _media(self, rowid, chat, timestamp, mime, caption) -> tuple:
        rng = self._rng
        folder = "WhatsApp Images" if mime.startswith("image") else "WhatsApp Voice Notes"
        prefix, suffix = ("IMG", "jpg") if mime.startswith("image") else ("PTT", "opus")
        name = f"Media/{folder}/{prefix}-{timestamp // 1000}-WA{rng.randint(0, 9999):04d}.{suffix}"
        width, height = (1600, 1200) if mime.startswith("image") else (0, 0)
        size = rng.randint(8_000, 600_000)
        return (rowid, chat.rowid, name, size, rng.randbytes(32), timestamp // 1000, width, height,
                height / width if width else None, f"/v/t62.7118-24/{rng.randint(10**7, 10**8)}_{_hex(rng, 12)}.enc",
                mime, size, _hex(rng, 32), 0 if width else rng.randint(1, 120), _hex(rng, 32), caption)


def _whatsapp_stream(rng: random.Random, composer: _WhatsAppComposer, chats: list[_WhatsAppChat],
                     first_rowid: int, count: int, timestamp: int) -> Iterator[tuple]:
    """`count` messages after `timestamp` (ms), in random chats, a minute apart on average."""
    for rowid in range(first_rowid, first_rowid + count):
        timestamp += 1000 + int(rng.expovariate(1 / 60_000))
        yield composer.message(rowid, _pick(rng, chats), timestamp)


def _whatsapp_write(db: apsw.Connection, composed: Iterable[tuple[tuple, tuple | None, tuple | None]]) -> None:
    """Insert messages with their media and FTS rows, as the app's code does (no triggers)."""
    for batch in _batched(composed, BATCH_ROWS):
        db.executemany(_WHATSAPP_INSERT_MESSAGE, [message for message, _, _ in batch])
        db.executemany(_WHATSAPP_INSERT_MEDIA, [media for _, media, _ in batch if media])
        db.executemany("INSERT INTO message_ftsv2 (rowid, content, fts_jid, fts_namespace) VALUES (?,?,?,?)",
                       [fts for _, _, fts in batch if fts])
        _whatsapp_point_chats(db, [message for message, _, _ in batch])


@dataclasses.dataclass
class _ChatPointers:
    last: int = 0  # newest message _id
    timestamp: int = 0
    read: int | None = None  # our newest message _id, if we wrote
    unseen: int = 0  # received since then
    restart: bool = False  # whether `unseen` replaces the stored count instead of adding to it


def _whatsapp_point_chats(db: apsw.Connection, messages: list[tuple]) -> None:
    """Move each chat's pointers to its newest message and count unseen ones, as each arrival does.

    Folded per chat first, so a bulk load costs one UPDATE per chat rather than one per message.
    """
    chats: dict[int, _ChatPointers] = {}
    for message in messages:  # in the column order of _WHATSAPP_INSERT_MESSAGE
        rowid, chat_id, from_me, timestamp = message[0], message[1], message[2], message[6]
        pointers = chats.setdefault(chat_id, _ChatPointers())
        pointers.last, pointers.timestamp = rowid, timestamp
        if from_me:  # replying means the chat was read
            pointers.read, pointers.unseen, pointers.restart = rowid, 0, True
        else:
            pointers.unseen += 1
    db.executemany(
        "UPDATE chat SET last_message_row_id = ?2, display_message_row_id = ?2, sort_timestamp = ?3,"
        " last_read_message_row_id = coalesce(?4, last_read_message_row_id),"
        " unseen_message_count = ?5 + CASE WHEN ?6 THEN 0 ELSE coalesce(unseen_message_count, 0) END,"
        " unseen_row_count = ?5 + CASE WHEN ?6 THEN 0 ELSE coalesce(unseen_row_count, 0) END WHERE _id = ?1",
        [(chat_id, p.last, p.timestamp, p.read, p.unseen, p.restart) for chat_id, p in chats.items()])


def create_whatsapp(path, *, messages=200, chats=8, seed=0) -> None:
    """WhatsApp Android msgstore.db-like database, in WAL mode with an FTS5 message index."""
    rng = random.Random(seed)
    with _new_database(path) as db:
        _bulk_load_pragmas(db)
        db.execute(f"PRAGMA user_version = {_WHATSAPP_USER_VERSION}")
        with db:
            db.execute(_WHATSAPP_SCHEMA)
            chat_list = _whatsapp_contacts(db, rng, chats)
            texts = _text_pool(rng, _ENGLISH, [n.title() for n in _FIRST_NAMES], 8192)
            composer = _WhatsAppComposer(rng, texts)
            if chat_list:
                _whatsapp_write(db, _whatsapp_stream(rng, composer, chat_list, 1, messages, _WHATSAPP_START_MS))
        # Switched after the bulk load, which would otherwise pass through the -wal twice; the
        # checkpoint folds anything left back into the file so that no -wal stays beside it.
        db.execute("PRAGMA journal_mode = WAL")
        db.wal_checkpoint(mode=apsw.SQLITE_CHECKPOINT_TRUNCATE)


def whatsapp_new_messages(db: apsw.Connection, rng: random.Random, n: int) -> list[int]:
    """Send and receive `n` messages in random chats, with FTS rows and chat pointers. Returns _ids."""
    chats = _whatsapp_load_chats(db)
    if not chats:
        raise LookupError("no chat to write to")
    next_rowid, timestamp = db.execute(
        "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'message'), 0),"
        " coalesce((SELECT max(_id) FROM message), 0)) + 1, (SELECT max(timestamp) FROM message)").fetchone()
    composer = _WhatsAppComposer(rng, _text_pool(rng, _ENGLISH, [n.title() for n in _FIRST_NAMES], 32 + n))
    composed = list(_whatsapp_stream(rng, composer, chats, next_rowid, n, timestamp or _WHATSAPP_START_MS))
    with db:
        _whatsapp_write(db, composed)
    return list(range(next_rowid, next_rowid + n))


def whatsapp_delete_for_everyone(db: apsw.Connection, rng: random.Random, msg_id: int | None = None) -> int:
    """Revoke a text message: type 15, text gone, a message_revoked row, out of the FTS index. Returns its _id."""
    with db:
        if msg_id is None:
            msg_id = _recent_key(db, rng, "message", "_id", f"message_type = {WHATSAPP_TEXT}")
        key_id, timestamp = db.execute("SELECT key_id, timestamp FROM message WHERE _id = ?", (msg_id,)).fetchone()
        db.execute("UPDATE message SET message_type = ?, text_data = NULL WHERE _id = ?", (WHATSAPP_REVOKED, msg_id))
        db.execute("INSERT OR REPLACE INTO message_revoked (message_row_id, revoked_key_id, revoke_timestamp)"
                   " VALUES (?,?,?)", (msg_id, key_id, timestamp + rng.randint(2_000, 3_600_000)))
        db.execute("DELETE FROM message_ftsv2 WHERE rowid = ?", (msg_id,))
    return msg_id


# -----------------------------------------------------------------------------------------
# Registry for tests, the demo and benchmarks
# -----------------------------------------------------------------------------------------

Change = Callable[[apsw.Connection, random.Random], object]


class SampleApp(NamedTuple):
    """A sample generator and the changes its app makes, each callable as `change(db, rng)`."""

    create: Callable[..., None]
    changes: Mapping[str, Change]


SAMPLE_APPS: Mapping[str, SampleApp] = {
    "wechat": SampleApp(create_wechat, {
        "new_messages": partial(wechat_new_messages, n=20),
        "recall": wechat_recall,
        "delete_chat": wechat_delete_chat,
        "delete_newest": partial(wechat_delete_newest, n=3),
        "status_churn": partial(wechat_status_churn, n=10),
    }),
    "imessage": SampleApp(create_imessage, {
        "new_messages": partial(imessage_new_messages, n=20),
        "edit": imessage_edit,
        "delete": imessage_delete,
    }),
    "whatsapp": SampleApp(create_whatsapp, {
        "new_messages": partial(whatsapp_new_messages, n=20),
        "delete_for_everyone": whatsapp_delete_for_everyone,
    }),
}
"""Every sample app by name; tests and benchmarks pick an app and a change from here."""
