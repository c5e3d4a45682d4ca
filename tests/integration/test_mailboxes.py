"""CREATE/DELETE/RENAME/SUBSCRIBE/LIST/LSUB/STATUS/NAMESPACE against the real server."""

from __future__ import annotations

from tests.integration.harness import RawClient, ServerThread
from tests.integration.mbox import simple


def login(server: ServerThread, user: str) -> RawClient:
    c = RawClient(server.port)
    assert c.cmd(f"LOGIN {user} secret", tag="L")[-1].startswith(b"L OK")
    return c


def test_new_account_has_special_use_mailboxes(server: ServerThread, user: str) -> None:
    c = login(server, user)
    lines = c.cmd('LIST "" "*"', tag="a")
    assert lines[-1].startswith(b"a OK")
    listed = {line.rsplit(b" ", 1)[1].strip(): line for line in lines[:-1]}
    assert set(listed) == {b"INBOX", b"Sent", b"Drafts", b"Trash", b"Junk", b"Archive"}
    assert b"\\Sent" in listed[b"Sent"] and b"\\Trash" in listed[b"Trash"]
    assert b"\\Junk" in listed[b"Junk"] and b"\\Drafts" in listed[b"Drafts"]
    assert b"\\Archive" in listed[b"Archive"]
    assert lines[0].startswith(b'* LIST (\\HasNoChildren) "/" INBOX')
    special = c.cmd('LIST (SPECIAL-USE) "" "*"', tag="b")
    assert len(special) == 6 and not any(b"INBOX" in x for x in special[:-1])
    c.close()


def test_list_delimiter_and_percent(server: ServerThread, user: str) -> None:
    c = login(server, user)
    assert c.cmd('LIST "" ""', tag="a")[0] == b'* LIST (\\Noselect) "/" ""\r\n'
    c.cmd("CREATE Work/Projects/Alpha", tag="b")
    top = c.cmd('LIST "" "%"', tag="c")
    names = [x.rsplit(b" ", 1)[1].strip() for x in top[:-1]]
    assert b"Work" in names and b"Work/Projects" not in names
    assert any(b"\\HasChildren" in x and x.endswith(b" Work\r\n") for x in top)
    sub = c.cmd('LIST "Work/" "%"', tag="d")
    assert [x.rsplit(b" ", 1)[1].strip() for x in sub[:-1]] == [b"Work/Projects"]
    every = c.cmd('LIST "" "work/*"', tag="e")  # not INBOX: case-sensitive
    assert len(every) == 1
    inbox = c.cmd('LIST "" "inbox"', tag="f")
    assert inbox[0].endswith(b" INBOX\r\n")
    c.close()


def test_create_delete_rules(server: ServerThread, user: str) -> None:
    c = login(server, user)
    assert c.cmd("CREATE INBOX", tag="a")[-1].startswith(b"a NO")
    assert c.cmd("CREATE Trash", tag="b")[-1].startswith(b"b NO [ALREADYEXISTS]")
    assert c.cmd("CREATE Parent/Child", tag="c")[-1].startswith(b"c OK")
    assert c.cmd("DELETE Parent", tag="d")[-1].startswith(b"d NO [HASCHILDREN]")
    assert c.cmd("DELETE Parent/Child", tag="e")[-1].startswith(b"e OK")
    assert c.cmd("DELETE Parent", tag="f")[-1].startswith(b"f OK")
    assert c.cmd("DELETE Parent", tag="g")[-1].startswith(b"g NO [NONEXISTENT]")
    assert c.cmd("DELETE INBOX", tag="h")[-1].startswith(b"h NO")
    assert c.cmd('CREATE "bad*name"', tag="i")[-1].startswith(b"i NO")
    assert c.cmd("CREATE Reports (USE (\\Flagged))", tag="j")[-1].startswith(b"j OK")
    assert b"\\Flagged" in c.cmd('LIST "" Reports', tag="k")[0]
    c.close()


def test_uidvalidity_changes_when_a_name_is_reused(server: ServerThread, user: str) -> None:
    c = login(server, user)
    c.cmd("CREATE Reused", tag="a")
    first = c.cmd("STATUS Reused (UIDVALIDITY)", tag="b")[0]
    c.cmd("DELETE Reused", tag="c")
    c.cmd("CREATE Reused", tag="d")
    second = c.cmd("STATUS Reused (UIDVALIDITY)", tag="e")[0]
    assert first != second
    c.close()


def test_rename_moves_children_and_inbox_rename_keeps_inbox(
    server: ServerThread, user: str
) -> None:
    server.deliver(user, simple("one"))
    server.deliver(user, simple("two"))
    c = login(server, user)
    c.cmd("CREATE Old/Sub", tag="a")
    assert c.cmd("RENAME Old New", tag="b")[-1].startswith(b"b OK")
    names = [x.rsplit(b" ", 1)[1].strip() for x in c.cmd('LIST "" "New*"', tag="c")[:-1]]
    assert names == [b"New", b"New/Sub"]
    assert c.cmd("RENAME Trash Sent", tag="d")[-1].startswith(b"d NO [ALREADYEXISTS]")
    assert c.cmd("RENAME Missing Other", tag="e")[-1].startswith(b"e NO [NONEXISTENT]")
    assert c.cmd("RENAME INBOX OldInbox", tag="f")[-1].startswith(b"f OK")
    assert b"MESSAGES 2" in c.cmd("STATUS OldInbox (MESSAGES)", tag="g")[0]
    assert b"MESSAGES 0" in c.cmd("STATUS INBOX (MESSAGES)", tag="h")[0]
    c.close()


def test_subscriptions_and_lsub(server: ServerThread, user: str) -> None:
    c = login(server, user)
    c.cmd("CREATE Lists/Python", tag="a")
    assert c.cmd("SUBSCRIBE Lists/Python", tag="b")[-1].startswith(b"b OK")
    lsub = c.cmd('LSUB "" "*"', tag="c")
    assert any(x.endswith(b" Lists/Python\r\n") for x in lsub)
    pct = c.cmd('LSUB "" "%"', tag="d")
    assert any(b"\\Noselect" in x and x.endswith(b" Lists\r\n") for x in pct)
    subscribed = c.cmd('LIST (SUBSCRIBED) "" "*"', tag="e")
    assert any(b"\\Subscribed" in x and x.endswith(b" Lists/Python\r\n") for x in subscribed)
    rec = c.cmd('LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"', tag="f")
    assert any(b'("CHILDINFO" ("SUBSCRIBED"))' in x for x in rec)
    assert c.cmd("UNSUBSCRIBE Lists/Python", tag="g")[-1].startswith(b"g OK")
    assert not any(b"Lists/Python" in x for x in c.cmd('LSUB "" "*"', tag="h"))
    c.close()


def test_status_and_list_status(server: ServerThread, user: str) -> None:
    server.deliver(user, simple("s1"), flags=("\\Seen",))
    server.deliver(user, simple("s2"))
    c = login(server, user)
    st = c.cmd("STATUS INBOX (MESSAGES UNSEEN UIDNEXT UIDVALIDITY SIZE DELETED RECENT)", tag="a")[0]
    assert b"MESSAGES 2" in st and b"UNSEEN 1" in st and b"UIDNEXT 3" in st and b"DELETED 0" in st
    size = len(simple("s1")) + len(simple("s2"))
    assert f"SIZE {size}".encode() in st
    assert c.cmd("STATUS INBOX (BOGUS)", tag="b")[-1].startswith(b"b BAD")
    lines = c.cmd('LIST "" "INBOX" RETURN (STATUS (MESSAGES UNSEEN))', tag="c")
    assert (
        lines[0].startswith(b"* LIST") and lines[1] == b"* STATUS INBOX (MESSAGES 2 UNSEEN 1)\r\n"
    )
    c.close()


def test_mailbox_names_mutf7_for_rev1_and_utf8_for_rev2(server: ServerThread, user: str) -> None:
    c = login(server, user)
    assert c.cmd("CREATE R&AOk-sum&AOk-", tag="a")[-1].startswith(b"a OK")  # "Résumé"
    assert any(x.endswith(b" R&AOk-sum&AOk-\r\n") for x in c.cmd('LIST "" "R*"', tag="b"))
    c.cmd("ENABLE IMAP4rev2", tag="c")
    listed = c.cmd('LIST "" "R*"', tag="d")
    assert any("Résumé".encode() in x for x in listed)
    assert c.cmd('SELECT "Résumé"', tag="e")[-1].startswith(b"e OK")
    c.close()
