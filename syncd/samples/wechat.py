"""WeChat (Android EnMicroMsg.db, decrypted): the sample database and the changes WeChat makes."""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Iterable, Iterator
from typing import NamedTuple

import apsw

from ._common import new_database, pick, random_hex, random_keys, recent_key
from .text import CHINESE, ZH_SHORT, long_text, text_pool, url

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
    (surname, sur_py), (given, given_py) = pick(rng, _SURNAMES), pick(rng, _GIVEN_NAMES)
    if rng.random() < 0.15:
        nickname = pick(rng, _HANDLES)
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
    lvbuff = _lv_buffer(rng.randint(0, 2), "CN", "Guangdong", "Shenzhen", pick(rng, ZH_SHORT))
    return (username, alias, remark, nickname, initials, quanpin, 3, lvbuff, 0,
            f"v3_{random_hex(rng, 24)}@stranger", 0)


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
                pick(rng, usernames), len(usernames), _WECHAT_START_MS))
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
        sender = self._me if is_send else (pick(rng, members).username if members else chat.username)
        roll = rng.random()
        if roll < _WECHAT_KIND_CUTS[0]:  # plain text, four rows in five: keep this path short
            msg_type, content, img_path, lvbuffer = WECHAT_TEXT, pick(rng, self._texts), None, None
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
        md5 = random_hex(rng, 16)
        xml = (f'<?xml version="1.0"?>\n<msg>\n\t<img aeskey="{random_hex(rng, 16)}" encryver="1" '
               f'cdnthumbaeskey="{random_hex(rng, 16)}" cdnthumburl="{random_hex(rng, 60)}" '
               f'cdnthumblength="{size // 60}" '
               f'cdnthumbheight="120" cdnthumbwidth="90" cdnmidimgurl="{random_hex(rng, 60)}" length="{size}" '
               f'md5="{md5}" />\n</msg>\n')
        return WECHAT_IMAGE, xml, f"THUMBNAIL_DIRPATH://th_{random_hex(rng, 16)}", _lv_buffer(size, md5, 1080, 1920)

    def _voice(self, chat, sender, create_time):
        millis = self._rng.randint(900, 59_000)
        path = f"{create_time // 1000}{random_hex(self._rng, 6)}"
        return WECHAT_VOICE, f"{sender}:{millis}:0\n", path, None

    def _video(self, chat, sender, create_time):
        rng = self._rng
        xml = (f'<?xml version="1.0"?>\n<msg>\n\t<videomsg aeskey="{random_hex(rng, 16)}" '
               f'cdnthumburl="{random_hex(rng, 60)}" '
               f'length="{rng.randint(10**6, 5 * 10**7)}" playlength="{rng.randint(3, 300)}" '
               f'md5="{random_hex(rng, 16)}" fromusername="{sender}" />\n</msg>\n')
        return WECHAT_VIDEO, xml, random_hex(rng, 16), _lv_buffer(rng.randint(3, 300), "mp4")

    def _sticker(self, chat, sender, create_time):
        rng = self._rng
        md5 = random_hex(rng, 16)
        xml = (f'<msg><emoji fromusername="{sender}" tousername="{chat.username}" type="2" md5="{md5}" '
               f'len="{rng.randint(5_000, 400_000)}" productid="" cdnurl="http://wxapp.tc.qq.com/262/20304/'
               f'stodownload?m={md5}&amp;filekey={random_hex(rng, 16)}&amp;bizid=1023" '
               f'width="240" height="240" /></msg>')
        return WECHAT_STICKER, xml, None, None

    def _app(self, chat, sender, create_time):
        rng = self._rng
        title = pick(rng, _WECHAT_APP_TITLES)
        xml = (f'<?xml version="1.0"?>\n<msg>\n\t<appmsg appid="" sdkver="0">\n\t\t<title>{title}</title>\n'
               f"\t\t<des>{pick(rng, self._texts)}</des>\n\t\t<type>5</type>\n"
               f"\t\t<url>{url(rng, CHINESE)}&amp;chksm={random_hex(rng, 32)}&amp;scene=58#rd</url>\n"
               f"\t\t<thumburl>https://mmbiz.qpic.cn/mmbiz_jpg/{random_hex(rng, 40)}/640</thumburl>\n"
               f"\t\t<sourceusername>{pick(rng, _OFFICIAL_ACCOUNTS)[0]}</sourceusername>\n\t</appmsg>\n"
               f"\t<fromusername>{sender}</fromusername>\n\t<scene>0</scene>\n</msg>\n")
        return WECHAT_APP, xml, None, _lv_buffer(0, title)

    def _system(self, chat, sender, create_time):
        rng = self._rng
        if chat.members:
            a, b = rng.sample(chat.members, 2) if len(chat.members) > 1 else chat.members * 2
            text = pick(rng, _WECHAT_GROUP_NOTICES).format(a=a.nickname, b=b.nickname, group=pick(rng, _GROUP_NAMES))
        else:
            text = pick(rng, _WECHAT_PRIVATE_NOTICES).format(a=chat.nickname)
        return WECHAT_SYSTEM, text, None, None

    def _long(self, chat, sender, create_time):
        return WECHAT_TEXT, long_text(self._rng, self._texts), None, None


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
    with new_database(path, user_version=_WECHAT_USER_VERSION) as db:
        with db:
            db.execute(_WECHAT_SCHEMA)
            me = "wxid_" + "".join(rng.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=14))
            chat_list = _wechat_contacts(db, rng, chats, me)
            names = [c.nickname for c in chat_list] + [m.nickname for c in chat_list for m in c.members]
            texts = text_pool(rng, CHINESE, names, 8192)
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
    texts = text_pool(rng, CHINESE, [c.nickname for c in chats], 32 + n)
    composer = _WeChatComposer(rng, _wechat_account(db), texts, seq=last_seq or rng.randint(10**8, 6 * 10**8))
    create_time = max(last_time or _WECHAT_START_MS, _WECHAT_START_MS)
    ids = []
    with db:
        for _ in range(n):
            # Most traffic is in chats already on the list; now and then an old friend writes.
            chat = pick(rng, active if active and rng.random() < 0.9 else chats)
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
            msg_id = recent_key(db, rng, "message", "msgId", f"type != {WECHAT_SYSTEM}")
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
            talker = pick(rng, talkers)
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
        ids = random_keys(db, rng, "message", "msgId", n, f"type != {WECHAT_SYSTEM}")
        for msg_id in ids:
            (status,) = db.execute("SELECT status FROM message WHERE msgId = ?", (msg_id,)).fetchone()
            db.execute("UPDATE message SET status = ? WHERE msgId = ?",
                       (_WECHAT_STATUS_FLIP.get(status, WECHAT_READ), msg_id))
    return len(ids)

