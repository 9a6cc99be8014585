"""The read endpoints: their query parameters, their pages, and their quirks.

Also the GET paths that are not reads: ``/v1/broadcast/{start,pause,resume,end}/{id}``
start or stop a campaign on the real API. The fake serves them as the state changes
they are, and records each in ``broadcast_actions``, so a test can see a tap that
touched one.
"""

from __future__ import annotations

import re
import typing as t
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from fake_smartflo import render
from fake_smartflo.data import IST, Dataset
from fake_smartflo.render import CALL_DATE_FORMAT

#: A request's query parameters (the last value of each).
Params = dict[str, str]
#: A response body, before it is written as JSON (an object, or a bare array).
Body = t.Any
#: What serves one (method, path): the query parameters (and the path's own, such
#: as ``list_id``) in, the body out.
Route = t.Callable[[Params], Body]
#: The features an account may lack, and the paths each one serves: without it,
#: those paths answer 403 (as the real API does for a token or an account without
#: the dialer or broadcast feature).
FEATURE_PATHS = {
    "broadcast": frozenset(
        {"/v1/broadcast/lists", "/v1/broadcast/leads/{list_id}", "/v2/broadcasts"}
    ),
    "dialer": frozenset({"/v1/dialer/campaign"}),
}


def _path_pattern(template: str) -> str:
    """A regular expression for a path template: ``{name}`` matches one segment."""
    return re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))


#: GET paths that change a broadcast, and the status each one leaves it in.
BROADCAST_ACTIONS = {"start": 1, "pause": 2, "resume": 1, "end": 3}


@dataclass
class Endpoints(Dataset):
    """``GET`` contacts, contact groups, call records and users, with switchable quirks.

    - ``page_cap``: ``limit`` is capped silently, and the capped value reported in
      the envelope, or the limit asked for with ``echo_asked_limit`` (then a short
      page proves nothing); ``refuse_limit_above`` answers a larger ``limit`` with
      a 422 whose message names the largest accepted;
    - ``ids_as_strings``: ids arrive as numeric strings ("mixed": every other one);
    - ``updated_after`` is naive ``Y-m-d H:i:s`` read in ``naive_tz`` (IST, the
      harsh reading), compared exclusively unless ``inclusive_updated_after``;
    - ``ignore_page``: every page is page 1 (a broken server);
    - contact groups cap ``limit`` at 100 whatever ``page_cap`` says;
    - call records come newest first with ``count``; ``from_date``/``to_date``
      are read in ``call_dates_tz`` (IST, as documented) and inclusively
      (``exclusive_call_dates`` for the other reading; ``ignore_call_dates`` for a
      server that does not filter); calls started in the same second can be
      shuffled on each request; calls can arrive while a window is read; and one
      page of one window can answer a body without results; ``call_id`` filters;
    - users come in ``last_seen_id`` keyset pages with ``has_more``;
    - departments, numbers and broadcast lists and leads are bare arrays, IVRs and
      dialer campaigns one object holding them all; leads of a list in
      ``broken_leads_lists`` (or of no list) answer an error object, not a list;
    - broadcasts come in pages of at most 100;
    - ``features_off`` ("broadcast", "dialer") refuses those features' paths.
    """

    page_cap: int = 100
    #: The envelope's ``limit`` is the one asked for, not the one served.
    echo_asked_limit: bool = False
    #: A ``limit`` above this is answered 422 (0: never).
    refuse_limit_above: int = 0
    default_limit: int = 10
    ids_as_strings: render.IdStyle = False
    naive_tz: timezone = IST
    inclusive_updated_after: bool = False
    return_deleted: bool = True
    ignore_page: bool = False
    exclusive_call_dates: bool = False
    ignore_call_dates: bool = False
    #: The zone the server reads from_date/to_date in (IST, as documented).
    call_dates_tz: timezone = IST
    #: Calls started in the same second come in a new order on every request, as
    #: with LIMIT/OFFSET over a sort that is not unique.
    shuffle_call_ties: bool = False
    #: This many calls arrive, newer than all the window held, when the first page
    #: of a window is read (once); their ids are then in ``late_arrivals``.
    late_calls_during_read: int = 0
    #: (from_date, page) of the one page that answers a body without results.
    broken_call_page: tuple[str, str] | None = None
    #: Features the account lacks (keys of FEATURE_PATHS): their paths answer 403.
    features_off: frozenset[str] = frozenset()
    #: Lists whose leads answer an error object instead of a list.
    broken_leads_lists: frozenset[int] = frozenset()
    late_arrivals: list[str | int] = field(default_factory=list, init=False)
    #: (action, broadcast id) of every request that changed a broadcast.
    broadcast_actions: list[tuple[str, str]] = field(default_factory=list, init=False)

    def routes(self) -> dict[tuple[str, str], Route]:
        """(method, path) -> what serves it; any other path is answered 403.

        A path may hold ``{name}`` parts, passed to the route as parameters.
        """
        routes: dict[tuple[str, str], Route] = {
            ("GET", "/v1/contacts"): self.list_contacts,
            ("GET", "/v1/contact/groups"): self.list_contact_groups,
            ("GET", "/v1/call/records"): self.list_call_records,
            ("GET", "/v1/users"): self.list_users,
            ("GET", "/v1/departments"): self.list_departments,
            ("GET", "/v1/ivrs"): self.list_ivrs,
            ("GET", "/v1/my_number"): self.list_numbers,
            ("GET", "/v1/broadcast/lists"): self.list_broadcast_lists,
            ("GET", "/v1/broadcast/leads/{list_id}"): self.list_leads,
            ("GET", "/v2/broadcasts"): self.list_broadcasts,
            ("GET", "/v1/dialer/campaign"): self.list_dialer_campaigns,
        }
        for action in BROADCAST_ACTIONS:
            path = f"/v1/broadcast/{action}/{{broadcast_id}}"
            routes["GET", path] = self._changer(action)
        off = set().union(*(FEATURE_PATHS[name] for name in self.features_off))
        return {key: route for key, route in routes.items() if key[1] not in off}

    def resolve(self, method: str, path: str) -> tuple[Route, Params] | None:
        """The route serving ``method`` ``path``, and the parameters in the path."""
        routes = self.routes()
        if (route := routes.get((method, path))) is not None:
            return route, {}
        for (route_method, template), route in routes.items():
            match = re.fullmatch(_path_pattern(template), path)
            if route_method == method and match:
                return route, match.groupdict()
        return None

    render_call = staticmethod(render.render_call)

    def parse_query_time(self, text: str) -> datetime:
        """Read ``updated_after``: naive in ``naive_tz``, ISO offsets as given."""
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            moment = datetime.strptime(text, "%Y-%m-%d %H:%M:%S")  # noqa: DTZ007
        return moment if moment.tzinfo else moment.replace(tzinfo=self.naive_tz)

    def page_params(self, params: Params) -> tuple[int, int]:
        """The (page, capped limit) a list endpoint uses."""
        limit = min(int(params.get("limit", self.default_limit)), self.page_cap)
        page = 1 if self.ignore_page else max(int(params.get("page", 1)), 1)
        return page, limit

    def reported_limit(self, params: Params, limit: int) -> int:
        """The ``limit`` the envelope reports for a page served ``limit`` a page."""
        return int(params.get("limit", limit)) if self.echo_asked_limit else limit

    def limit_refusal(self, params: Params) -> tuple[int, Body] | None:
        """(status, body) refusing the ``limit`` asked for, if it is refused."""
        limit = params.get("limit", "")
        if not self.refuse_limit_above or not limit.isdigit():
            return None
        if int(limit) <= self.refuse_limit_above:
            return None
        message = f"The limit may not be greater than {self.refuse_limit_above}."
        return 422, {"success": False, "message": message}

    def list_contacts(self, params: Params) -> Body:
        """``GET /v1/contacts``."""
        page, limit = self.page_params(params)
        rows = self.sorted_contacts()
        if "updated_after" in params:
            after = self.parse_query_time(params["updated_after"])
            rows = [
                c
                for c in rows
                if c.updated_at > after
                or (self.inclusive_updated_after and c.updated_at == after)
            ]
        if "contact_group_id" in params:
            rows = [
                c for c in rows if str(c.contact_group_id) == params["contact_group_id"]
            ]
        if "contact_id" in params:
            rows = [c for c in rows if str(c.id) == params["contact_id"]]
        if not self.return_deleted:
            rows = [c for c in rows if c.deleted_at is None]
        chunk = rows[(page - 1) * limit : page * limit]
        return {
            "page": page,
            "size": len(chunk),
            "limit": self.reported_limit(params, limit),
            "results": [render.render_contact(c, self.ids_as_strings) for c in chunk],
        }

    def list_contact_groups(self, params: Params) -> Body:
        """``GET /v1/contact/groups`` (``limit`` is documented 1 to 100)."""
        page, limit = self.page_params(params)
        limit = min(limit, 100)
        with self.lock:
            rows = sorted(self.group_store.values(), key=lambda group: group.id)
        if "updated_after" in params:
            after = self.parse_query_time(params["updated_after"])
            rows = [g for g in rows if g.updated_at > after]
        if "contact_group_id" in params:
            rows = [g for g in rows if str(g.id) == params["contact_group_id"]]
        chunk = rows[(page - 1) * limit : page * limit]
        return {
            "page": page,
            "size": len(chunk),
            "limit": limit,
            "results": [render.render_group(g, self.ids_as_strings) for g in chunk],
        }

    def list_call_records(self, params: Params) -> Body:
        """``GET /v1/call/records``: newest first, with ``count``."""
        page, limit = self.page_params(params)
        asked = (params.get("from_date", ""), params.get("page", "1"))
        if asked == self.broken_call_page:
            return {"success": False, "message": "Something went wrong"}
        with self.lock:
            rows = list(self.call_store.values())
        low = high = None
        if self.ignore_call_dates:
            params = {k: v for k, v in params.items() if not k.endswith("_date")}
        if "from_date" in params:
            low = datetime.strptime(params["from_date"], CALL_DATE_FORMAT)  # noqa: DTZ007
            low = low.replace(tzinfo=self.call_dates_tz)
            rows = [c for c in rows if self._after(c.started_at, low)]
        if "to_date" in params:
            high = datetime.strptime(params["to_date"], CALL_DATE_FORMAT)  # noqa: DTZ007
            high = high.replace(tzinfo=self.call_dates_tz)
            rows = [c for c in rows if self._after(high, c.started_at)]
        if "call_id" in params:
            rows = [c for c in rows if render.call_id_of(c) == params["call_id"]]
        if self.shuffle_call_ties:
            with self.lock:
                ties = {c.seq: self.rng.random() for c in rows}
            rows.sort(key=lambda c: (c.started_at, ties[c.seq]), reverse=True)
        else:
            rows.sort(key=lambda c: (c.started_at, c.seq), reverse=True)
        chunk = rows[(page - 1) * limit : page * limit]
        if page == 1 and chunk and self.late_calls_during_read:
            self._arrive_during_read(chunk[0].started_at, high)
        return {
            "count": len(rows),
            "limit": self.reported_limit(params, limit),
            "size": len(chunk),
            "page": page,
            "results": [render.render_call(c) for c in chunk],
        }

    def _after(self, later: datetime, earlier: datetime) -> bool:
        return later > earlier or (not self.exclusive_call_dates and later == earlier)

    def _arrive_during_read(self, newest: datetime, high: datetime | None) -> None:
        """Calls written into the window being read, newer than all it held."""
        count, self.late_calls_during_read = self.late_calls_during_read, 0
        self.late_arrivals = []
        for n in range(1, count + 1):
            moment = newest + timedelta(seconds=n)
            if high is not None and moment >= high:
                msg = "no room in the window for the late calls"
                raise ValueError(msg)
            self.late_arrivals.append(self.add_call(moment))

    def list_users(self, params: Params) -> Body:
        """``GET /v1/users``: keyset pages after ``last_seen_id``."""
        limit = min(int(params.get("limit", self.default_limit)), self.page_cap)
        with self.lock:
            rows = sorted(self.user_store.values(), key=lambda user: user.id)
        if "last_seen_id" in params:
            rows = [u for u in rows if u.id > int(params["last_seen_id"])]
        chunk = rows[:limit]
        last = chunk[-1].id if chunk else params.get("last_seen_id")
        return {
            "has_more": len(rows) > limit,
            "count": len(chunk),
            "last_seen_id": (
                None
                if last is None
                else render.render_id(int(last), self.ids_as_strings)
            ),
            "data": [render.render_user(u, self.ids_as_strings) for u in chunk],
        }

    # Reference data and outbound campaigns

    def list_departments(self, _params: Params) -> Body:
        """``GET /v1/departments``: a bare array, ids and counters as strings."""
        with self.lock:
            rows = sorted(self.department_store.values(), key=lambda d: d.id)
        return [render.render_department(d) for d in rows]

    def list_ivrs(self, _params: Params) -> Body:
        """``GET /v1/ivrs``: every IVR under ``ivrs``."""
        with self.lock:
            rows = sorted(self.ivr_store.values(), key=lambda ivr: ivr.id)
        return {"ivrs": [render.render_ivr(i, self.ids_as_strings) for i in rows]}

    def list_numbers(self, _params: Params) -> Body:
        """``GET /v1/my_number``: the account's numbers (DIDs), a bare array."""
        with self.lock:
            rows = sorted(self.number_store.values(), key=lambda number: number.id)
        return [render.render_number(number) for number in rows]

    def list_broadcast_lists(self, _params: Params) -> Body:
        """``GET /v1/broadcast/lists``: a bare array."""
        with self.lock:
            rows = sorted(self.list_store.values(), key=lambda item: item.id)
        return [render.render_broadcast_list(r, self.ids_as_strings) for r in rows]

    def list_leads(self, params: Params) -> Body:
        """``GET /v1/broadcast/leads/{list_id}``: a bare array, or an error object."""
        list_id = int(params["list_id"]) if params["list_id"].isdigit() else None
        with self.lock:
            broadcast_list = self.list_store.get(list_id or 0)
            leads = list(self.lead_store.get(list_id or 0, []))
        if broadcast_list is None or list_id in self.broken_leads_lists:
            return {
                "status": "error",
                "message": f"Invalid list id {params['list_id']}",
            }
        return [render.render_lead(lead, broadcast_list.name) for lead in leads]

    def list_broadcasts(self, params: Params) -> Body:
        """``GET /v2/broadcasts``: pages of at most 100."""
        page, limit = self.page_params(params)
        limit = min(limit, 100)
        with self.lock:
            rows = sorted(self.broadcast_store.values(), key=lambda b: b.created_at)
        chunk = rows[(page - 1) * limit : page * limit]
        return {
            "page": page,
            "size": len(chunk),
            "limit": limit,
            "broadcast_limit": 10,
            "results": [render.render_broadcast(b) for b in chunk],
        }

    def list_dialer_campaigns(self, _params: Params) -> Body:
        """``GET /v1/dialer/campaign``: every campaign under ``data``."""
        with self.lock:
            rows = sorted(self.campaign_store.values(), key=lambda c: c.id)
        return {"data": [render.render_dialer_campaign(c) for c in rows]}

    def _changer(self, action: str) -> Route:
        """What serves ``GET /v1/broadcast/<action>/{broadcast_id}``: a change."""

        def change(params: Params) -> Body:
            broadcast_id = params["broadcast_id"]
            with self.lock:
                self.broadcast_actions.append((action, broadcast_id))
                if broadcast := self.broadcast_store.get(broadcast_id):
                    broadcast.status = BROADCAST_ACTIONS[action]
            return {"success": True, "message": f"Broadcast {action} requested"}

        return change
