"""Placing and updating orders: each write commits together with the answer stored under its
correlation id, or not at all; a duplicate that raced ahead is found inside the same transaction."""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import orjson

from gateway.errors import ApiError, Problems
from gateway.idempotency import RETRY_AFTER_SECONDS, Answer, Claim
from gateway.order_model import STATUS_PENDING, LineItem, Order, link, new_order_id, order_uri, orders_uri
from gateway.storage import LockHeld, Storage, StorageUnavailable, StoredAnswer, Transaction
from schemas.lines import MAX_LINE_NUMBER, MAX_LINES, LineRequest
from schemas.orders import MAX_QUANTITY
from schemas.order_requests import OrderRequest

JSON = "application/json"
RETURN_WINDOW_SECONDS = 14 * 86400
RETURNABLE_TYPES = frozenset({"NEW", "RENEWAL"})
ORDER_ID_ATTEMPTS = 5  # 10-digit random ids: a second collision in a row is already vanishingly rare


@dataclasses.dataclass(frozen=True)
class Reply:
    answer: Answer
    replayed: bool


def replay(stored: StoredAnswer, claim: Claim) -> Reply:
    """The stored answer for a repeated key: replayed for the same request, 4123 for another one."""
    if stored.fingerprint != claim.fingerprint:
        raise ApiError("4123", fields=["X-Correlation-Id"])
    return Reply(stored.answer, replayed=True)


async def _replay_or_claim(tx: Transaction, claim: Claim) -> Reply | None:
    """Inside a write: the reply to a key that has its answer stored, or None with the key claimed until the
    transaction ends. 409 4122 while another process's request with the key is still executing (this
    process's own duplicates are answered so before they get here)."""
    try:
        stored = await tx.claim(claim.partner_id, claim.key, claim.not_before)
    except LockHeld:
        raise ApiError("4122", headers={"Retry-After": str(RETRY_AFTER_SECONDS)}) from None
    return None if stored is None else replay(stored, claim)


async def keep_answer(storage: Storage, claim: Claim, answer: Answer) -> Reply:
    """Stores an answer that wrote nothing (a preview, a refusal caused by the request alone)."""

    async def unit(tx: Transaction) -> Reply:
        if replayed := await _replay_or_claim(tx, claim):
            return replayed
        await tx.store_answer(claim, answer, claim.now)
        return Reply(answer, replayed=False)

    return await storage.write(unit, grouped=True)


def preview(customer_id: str, request: OrderRequest, now: int) -> Answer:
    order = _order("", customer_id, "", request, _lines(request.lines, status=""), now, status="")
    resource = order.resource()
    resource["links"] = {"self": link(orders_uri(customer_id))}  # nothing stored: no resource of its own
    return Answer(200, orjson.dumps(resource), JSON)


async def place(storage: Storage, claim: Claim, customer_id: str, request: OrderRequest) -> Reply:
    """Claim, checks, order, lines and stored answer: one unit of work, one transaction."""

    async def unit(tx: Transaction) -> Reply:
        partner_id, now = claim.partner_id, claim.now
        if replayed := await _replay_or_claim(tx, claim):
            return replayed
        reseller_id = await tx.customer_reseller(customer_id, partner_id)
        if reseller_id is None:
            raise ApiError("1116")
        if request.order_type == "RETURN":
            lines = await _return_lines(tx, partner_id, customer_id, request, now)
        else:
            lines = _lines(request.lines, status=STATUS_PENDING)
        for _ in range(ORDER_ID_ATTEMPTS):
            order = _order(new_order_id(), customer_id, reseller_id, request, lines, now, status=STATUS_PENDING)
            if await tx.insert_order(order, claim.traceparent):
                answer = Answer(201, order.render(), JSON, order_uri(customer_id, order.order_id))
                await tx.store_answer(claim, answer, now)
                return Reply(answer, replayed=False)
        raise RuntimeError("no free order id after several attempts")

    # A RETURN waits for its original's lock; any other creation takes only its key's, without waiting.
    return await storage.write(unit, grouped=request.order_type != "RETURN")


async def update_reference(storage: Storage, claim: Claim, customer_id: str, order_id: str,
                           value: str) -> Reply:
    async def unit(tx: Transaction) -> Reply:
        partner_id = claim.partner_id
        if replayed := await _replay_or_claim(tx, claim):
            return replayed
        order = await tx.visible_order(customer_id, order_id, partner_id)
        if order is None:
            raise ApiError("2115" if await tx.customer_reseller(customer_id, partner_id) else "1116")
        before, order = order, dataclasses.replace(order, external_reference_id=value)
        await tx.update_order(before, order, claim.traceparent)
        answer = Answer(200, order.render(), JSON)
        await tx.store_answer(claim, answer, claim.now)
        return Reply(answer, replayed=False)

    return await storage.write(unit)  # it waits for its order's lock: never grouped


def _lines(requested: tuple[LineRequest, ...], status: str) -> tuple[LineItem, ...]:
    return tuple(
        LineItem(
            ext_line_item_number=line.number,
            offer_id=line.offer_id,
            quantity=line.quantity,
            subscription_id=line.subscription_id,
            status=status,
            currency_code=line.currency_code,
            deployment_id=line.deployment_id,
        )
        for line in requested
    )


def _order(order_id: str, customer_id: str, reseller_id: str, request: OrderRequest, lines: tuple[LineItem, ...],
           now: int, status: str) -> Order:
    return Order(
        order_id=order_id,
        customer_id=customer_id,
        reseller_id=reseller_id,
        order_type=request.order_type,
        status=status,
        created=now,
        line_items=lines,
        external_reference_id=request.external_reference_id,
        reference_order_id=request.reference_order_id,
        currency_code=request.currency_code,
    )


async def _return_lines(tx: Transaction, partner_id: str, customer_id: str, request: OrderRequest,
                        now: int) -> tuple[LineItem, ...]:
    """The lines of a RETURN, checked against what remains of the original (state-dependent: never stored)."""
    original = await tx.visible_order(customer_id, request.reference_order_id, partner_id)
    if original is None or original.order_type not in RETURNABLE_TYPES:
        raise ApiError("2115", "The referenced order is not a NEW or RENEWAL order of this customer",
                       fields=["referenceOrderId"])
    if original.created < now - RETURN_WINDOW_SECONDS:
        raise ApiError("2134", "The referenced order is older than 14 days", fields=["referenceOrderId"])
    returned = await tx.returned_quantities(original.order_id)
    by_number = {line.ext_line_item_number: line for line in original.line_items}
    remaining = {number: line.quantity - returned.get(number, 0) for number, line in by_number.items()}
    if all(left <= 0 for left in remaining.values()):
        raise ApiError("2133", "Everything of the referenced order has been returned", fields=["referenceOrderId"])
    problems = Problems(replayable=False)
    lines = []
    for line in request.lines:
        source = by_number.get(line.number)
        if source is None:
            problems.add("2131", "extLineItemNumber", "no such line in the referenced order", line=line.number)
        elif source.offer_id != line.offer_id:
            problems.add("2130", "offerId", "offerId differs from the referenced line", line=line.number)
        elif line.quantity > remaining[line.number]:
            problems.add("2120", "quantity", f"at most {max(remaining[line.number], 0)} left to return",
                         line=line.number)
        else:
            lines.append(LineItem(
                ext_line_item_number=line.number, offer_id=line.offer_id, quantity=line.quantity,
                subscription_id=source.subscription_id, status=STATUS_PENDING, currency_code=line.currency_code,
                deployment_id=line.deployment_id,
            ))
    problems.raise_any()
    return tuple(lines)


async def with_return_problems(storage: Storage, claim: Claim, customer_id: str, body: Mapping[str, Any],
                               refused: ApiError) -> ApiError:
    """`refused` (what the request alone is wrong about), with what the original of a RETURN finds wrong in
    it too: one answer names every problem, so that the client fixes its request once. An answer that
    names state-dependent problems is not stored. Checked in a unit of work that writes nothing."""
    checkable = _checkable_return(body)
    if checkable is None:
        return refused

    async def unit(tx: Transaction) -> None:
        if await tx.customer_reseller(customer_id, claim.partner_id) is not None:
            await _return_lines(tx, claim.partner_id, customer_id, checkable, claim.now)

    try:
        await storage.write(unit)
    except StorageUnavailable:
        return refused  # what the request alone is wrong about stands
    except ApiError as state:
        fields = [*refused.fields, *(field for field in state.fields if field not in refused.fields)]
        found = state.details or [state.message]  # a problem of the whole RETURN has no line to name
        return ApiError(refused.code, refused.message, details=[*refused.details, *found], fields=fields)
    return refused


def _checkable_return(body: Mapping[str, Any]) -> OrderRequest | None:
    """The RETURN a refused body asks for, as far as its original can check it: its reference, and the lines
    whose number, offer and quantity are well-formed (the others have problems of their own already)."""
    reference, lines = body.get("referenceOrderId"), body.get("lineItems")
    if body.get("orderType") != "RETURN" or not isinstance(reference, str) or not reference:
        return None
    if not isinstance(lines, list):
        lines = []  # what the whole RETURN is checked for (its original, its age, what is left) still holds
    checkable = tuple(
        LineRequest(line["extLineItemNumber"], line["offerId"], line["quantity"], "", "", None)
        for line in lines[:MAX_LINES]
        if isinstance(line, dict) and _whole(line.get("extLineItemNumber"), 0, MAX_LINE_NUMBER)
        and isinstance(line.get("offerId"), str) and line["offerId"] and _whole(line.get("quantity"), 1, MAX_QUANTITY)
    )
    return OrderRequest("RETURN", "", reference, "", checkable)


def _whole(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
