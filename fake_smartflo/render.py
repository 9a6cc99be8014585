"""How the API writes things: its zones and time formats, ids, and each record's JSON.

Pure functions from the stored data to what the server sends; the quirks that depend
on a switch (``ids_as_strings``) take it as an argument.
"""

from __future__ import annotations

import json
import typing as t
from datetime import datetime, timedelta, timezone

from fake_smartflo.data import IST, UTC, client_number, is_inbound

if t.TYPE_CHECKING:
    from fake_smartflo.data import (
        Broadcast,
        BroadcastList,
        CallRecord,
        Contact,
        ContactGroup,
        Department,
        DialerCampaign,
        Ivr,
        Lead,
        Number,
        User,
    )

#: How call records write times, and how ``from_date``/``to_date`` are read.
CALL_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
#: How many ``field_N`` columns a broadcast lead has (field_0 to field_34).
LEAD_FIELDS = 35

#: False (numbers), True (numeric strings) or "mixed" (every other one a string).
IdStyle = bool | str


def render_id(value: int, ids_as_strings: IdStyle) -> int | str:
    """Write an id the way the server does."""
    if ids_as_strings == "mixed":
        return str(value) if value % 2 else value
    return str(value) if ids_as_strings else value


def render_time(moment: datetime | None, *, ist: bool) -> str | None:
    """Write a time as ``...+0000`` or, for IST records, ``...+0530``."""
    if moment is None:
        return None
    zone = IST if ist else UTC
    return moment.astimezone(zone).strftime("%Y-%m-%dT%H:%M:%S%z")


def render_contact(contact: Contact, ids_as_strings: IdStyle) -> dict[str, object]:
    """The JSON object the API sends for ``contact``."""
    ist = contact.ist_offsets
    return {
        "id": render_id(contact.id, ids_as_strings),
        "contact_group_id": render_id(contact.contact_group_id, ids_as_strings),
        "contact_group_name": contact.contact_group_name,
        "phone_number": contact.phone_number,
        "name": contact.name,
        "email_id": contact.email_id,
        "address": contact.address,
        "company_name": contact.company_name,
        "custom_fields": [dict(item) for item in contact.custom_fields],
        "created_at": render_time(contact.created_at, ist=ist),
        "updated_at": render_time(contact.updated_at, ist=ist),
        "deleted_at": render_time(contact.deleted_at, ist=ist),
    }


def render_group(group: ContactGroup, ids_as_strings: IdStyle) -> dict[str, object]:
    """The JSON object the API sends for ``group`` (times with IST offsets)."""
    list_id = group.list_id
    return {
        "id": render_id(group.id, ids_as_strings),
        "name": group.name,
        "list_id": None if list_id is None else render_id(list_id, ids_as_strings),
        "description": group.description,
        "field_map": list(group.field_map),
        "added_by": group.added_by,
        "created_by": group.created_by,
        "clone_from_contact": group.clone_from_contact,
        "created_at": render_time(group.created_at, ist=True),
        "updated_at": render_time(group.updated_at, ist=True),
        "deleted_at": render_time(group.deleted_at, ist=True),
        "visible_to": group.visible_to,
    }


def call_id_of(call: CallRecord) -> str:
    """The call's ``call_id`` as the API writes it (``"1715235734.000129"``)."""
    return f"{int(call.started_at.timestamp())}.{call.seq:06d}"


def render_call(call: CallRecord) -> dict[str, object]:
    """The JSON object the API sends for ``call``.

    IST times and, by ``shape``, numbers as numeric strings, "N.A.", ``[]`` for
    empty objects, and each shape public code has seen in the nested fields.
    """
    start = call.started_at.astimezone(IST)
    end = start + timedelta(seconds=call.duration)
    answered = call.duration - 5 if call.answered else 0
    shape = call.shape
    agent = {"name": call.agent, "number": "+919800000001", "status": "answered"}
    notes = [None, "Asked for a callback", [{"note": "VIP", "by": 7001}], []][shape]
    return {
        "id": call.id,
        "call_id": call_id_of(call),
        "uuid": f"{call.seq:08x}-4b1e-4c2a-9d3f-000000000000",
        "direction": "inbound" if is_inbound(call) else "outbound",
        "description": "Call answered" if call.answered else "Call missed",
        "detailed_description": f"Handled by {call.agent}",
        "status": "answered" if call.answered else "missed",
        "recording_url": call.recording_url,
        "service": "Cloud Phone",
        "date": start.strftime("%Y-%m-%d"),
        "time": start.strftime("%H:%M:%S"),
        "end_stamp": end.strftime(CALL_DATE_FORMAT),
        "call_duration": str(call.duration) if shape % 2 else call.duration,
        "answered_seconds": str(answered) if shape else answered,
        "minutes_consumed": -(-answered // 60),
        "charges": ["0.50", 1, 0.75, "0"][shape],
        # Shape 1: a call that reached no department (an IVR hang-up, a direct dial).
        "department_name": None
        if shape == 1
        else call.department or ["Sales", None, "Support", "Sales"][shape],
        "agent_number": "+919800000001",
        "agent_name": call.agent,
        "client_number": client_number(call),
        "did_number": call.did,
        "reason": None if call.answered else "Agent not available",
        "hangup_cause": "NORMAL_CLEARING",
        "notes": notes,
        "contact_details": [{"id": call.seq, "name": "Ravi"}, [], None, "Ravi"][shape],
        "missed_agents": [[], [{"agent_id": "05001", "name": "Meera"}], [2, 3], []][
            shape
        ],
        "agent_hangup_data": [agent, [agent, agent], None, []][shape],
        "agent_ring_time": str(call.seq % 30) if call.answered else "N.A.",
        "circle": {"operator": "Airtel", "circle": "Karnataka"},
        "call_flow": [
            [{"type": "Init", "time": 1715235734}, {"type": "Agent"}],
            ["start", "connect"],
            [],
            {"0": {"type": "IVR"}, "2": {"type": "Hangup"}},
        ][shape],
        "call_hint": ["hint", None, "urgent", None][shape],
        "lead_id": [None, 501, "L-77", None][shape],
        "dialer_call_details": [None, {"campaign_id": 12}, [], "Campaign 9"][shape],
        "custom_status": [None, {"id": 3, "name": "Interested"}, "Interested", []][
            shape
        ],
    }


def render_user(user: User, ids_as_strings: IdStyle) -> dict[str, object]:
    """The JSON object the API sends for ``user``."""
    agent = None
    if user.agent_id is not None:
        agent = {
            "id": user.agent_id,
            "name": user.name,
            "status": 1,
            "follow_me_number": "+919800000001",
        }
    return {
        "id": render_id(user.id, ids_as_strings),
        "name": user.name,
        "agent": agent,
        "login_id": f"user{user.id}@example.com",
        "is_login_based_calling_enabled": user.id % 2 == 0,
        "is_international_outbound_enabled": user.id % 2 == 1,
        "user_role": {"id": render_id(user.role_id, ids_as_strings), "name": "Agent"},
        "extension": user.extension,
        "user_status": 1,
    }


def render_department(department: Department) -> dict[str, object]:
    """The JSON object the API sends for ``department``.

    Its id and counters are strings of digits, ``use_as_queue`` a real boolean, and
    an unset ``sticky_agent`` PHP's ``[]`` (its empty object).
    """
    agents = [
        {"id": agent_id, "name": name, "eid": f"E-{agent_id[-6:]}", "timeout": 20}
        for agent_id, name in department.agents
    ]
    sticky = (
        {"enabled": True, "time_period": 24, "format": "hours"}
        if department.sticky_agent
        else []
    )
    return {
        "id": str(department.id),
        "name": department.name,
        "agent_count": str(len(agents)),
        "calls_answered": str(department.calls_answered),
        "calls_missed": str(department.calls_missed),
        "queue_timeout": "60",
        "use_as_queue": department.use_as_queue,
        "sticky_agent": sticky,
        "transcription": {"enabled": False, "language": "en-IN", "agent_time": 30},
        "agents": agents,
        "timeout_dest_type": "voicemail",
        "timeout_destination": 12,
        "timeout_dest_name": f"{department.name} voicemail",
        "missed_call_sms_id": None if department.id % 2 else "77",
        "music_on_hold": "default",
    }


def render_ivr(ivr: Ivr, ids_as_strings: IdStyle) -> dict[str, object]:
    """The JSON object the API sends for ``ivr``.

    ``recording`` is a numeric string while ``invalid_recording`` is an integer, as
    documented; menu options are text or numbers.
    """
    return {
        "id": render_id(ivr.id, ids_as_strings),
        "name": ivr.name,
        "recording": str(ivr.recording),
        "invalid_recording": ivr.invalid_recording,
        "added_by": 7001,
        "ivr_menu": [
            {
                "option": int(option) if n % 2 else option,
                "destination_type": destination_type,
                "destination_id": destination_id,
                "sms_template_id": None,
                "webhook_id": None,
            }
            for n, (option, destination_type, destination_id) in enumerate(ivr.menu)
        ],
    }


def render_number(number: Number) -> dict[str, object]:
    """The JSON object the API sends for one of the account's numbers."""
    return {
        "id": number.id,
        "did": number.did,
        "alias": number.alias,
        "name": f"DID {number.did[-5:]}",
        "destination": number.destination,
    }


def render_broadcast_list(
    broadcast_list: BroadcastList, ids_as_strings: IdStyle
) -> dict[str, object]:
    """The JSON object the API sends for a broadcast list."""
    return {
        "id": render_id(broadcast_list.id, ids_as_strings),
        "name": broadcast_list.name,
    }


def mongo_date(moment: datetime) -> dict[str, object]:
    """A time as MongoDB's extended JSON writes it: epoch milliseconds as text."""
    milliseconds = (moment - EPOCH) // timedelta(milliseconds=1)
    return {"$date": {"$numberLong": str(milliseconds)}}


def render_lead(lead: Lead, list_name: str) -> dict[str, object]:
    """The JSON object the API sends for a lead.

    Times are Mongo dates; ``header`` and ``sensitive_field_map`` are JSON encoded
    in strings.
    """
    fields = {f"field_{n}": "" for n in range(LEAD_FIELDS)}
    fields.update(field_0=lead.phone, field_1=lead.name)
    return {
        "id": lead.id,
        "list_id": lead.list_id,
        "list_name": list_name,
        **fields,
        "dial_status": 1 if lead.call_count else 0,
        "dialer_dial_status": 0,
        "lead_picked": 0,
        "call_count": lead.call_count,
        "retry_count": max(lead.call_count - 1, 0),
        "priority": 1,
        "skill_id": None,
        "header": json.dumps(["Phone Number", "Name"]),
        "sensitive_field_map": json.dumps({"field_0": True}),
        "created_at": mongo_date(lead.created_at),
        "updated_at": mongo_date(lead.updated_at),
        "available_at": mongo_date(lead.created_at),
    }


def render_broadcast(broadcast: Broadcast) -> dict[str, object]:
    """The JSON object ``/v2/broadcasts`` sends for ``broadcast``.

    Its id is text; times are epoch seconds (a number, or for some its digits); an
    unset ``sms_notification`` is PHP's ``[]``.
    """
    start = int(broadcast.start.timestamp())
    end = None if broadcast.end is None else int(broadcast.end.timestamp())
    return {
        "id": broadcast.id,
        "name": broadcast.name,
        "list_id": broadcast.list_id,
        "caller_id": "+918069000001",
        "destination_type": "department",
        "destination_id": "21930",
        "concurrent_limit": 5,
        "status": broadcast.status,
        "sms_notification": [] if broadcast.status % 2 else {"enabled": False},
        "dialstatus": ["ANSWER", "NOANSWER", "BUSY"][: 1 + broadcast.status % 3],
        "start_date_time": start,
        "end_date_time": end if end is None or broadcast.status % 2 else str(end),
        "created_at": int(broadcast.created_at.timestamp()),
    }


def render_dialer_campaign(campaign: DialerCampaign) -> dict[str, object]:
    """The JSON object the API sends for a dialer campaign."""
    return {"id": campaign.id, "name": campaign.name}
