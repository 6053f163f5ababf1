"""The monitor page's alerts: the list, the picker, the explanation and the episode's story.

Every open or acknowledged alert is listed whatever the time range (a range only limits the
closed ones); each row shown is checked against its digest on the chain. The chosen alert
shows its timeline (raised, acknowledged by whom with the note, resolved) with the audit
records' hashes and the signed checkpoint covering each, the readings that kept it open,
and its explanation, decrypted only for a signed-in reader where the key is readable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pandas as pd
import streamlit as st

from fairlens_monitor.audit.events import ALERT_ACKNOWLEDGED, ALERT_RAISED, ALERT_RESOLVED
from fairlens_monitor.config.settings import Settings
from fairlens_monitor.errors import FairlensError
from fairlens_monitor.security.crypto import load_cipher
from fairlens_monitor.viewer import data, episode, flags, fmt

Marks = Callable[[str, list[int]], dict[int, tuple[bool, str]]]
KEY_UNAVAILABLE = "encrypted — key not available here"


def render(
    settings: Settings,
    monitor: str,
    table: pd.DataFrame,
    signed_in: bool,
    marks: Marks,
    bad: Mapping[int, str] | None = None,
) -> None:
    """Draw the alert list and the chosen alert's detail.

    Args:
        settings: the monitor's settings (its key folder).
        monitor: whose alerts.
        table: :func:`viewer.data.alerts`.
        signed_in: whether this browser session gave the page token.
        marks: checks rows against their digests on the chain (table, ids).
        bad: reading ids known to fail their digest check (the readings that kept the
            chosen alert open are marked by them).
    """
    open_now = int(table["state"].isin(data.OPEN_STATES).sum()) if not table.empty else 0
    st.subheader(f"Alerts ({len(table)}; {open_now} open or acknowledged)")
    if table.empty:
        st.caption("No alert in this time range, and none open.")
        return
    st.caption("Open and acknowledged alerts are always listed; the range limits closed ones.")
    checked = marks("alerts", [int(i) for i in table["alert_id"]])
    shown = fmt.alert_table(table)
    shown["Verified"] = [
        "✓" if checked[int(i)][0] else "✗ " + checked[int(i)][1] for i in table["alert_id"]
    ]
    if not all(ok for ok, _ in checked.values()):
        st.error("Some alert rows below are NOT what the audit trail recorded (column 'Verified').")
    st.dataframe(shown, hide_index=True, width="stretch")
    labels = {fmt.alert_choice(row): int(row["alert_id"]) for _, row in table.iterrows()}
    chosen = st.selectbox("Alert detail", list(labels), key="alert")
    if chosen is None:
        return
    alert_id = labels[str(chosen)]
    row = table[table["alert_id"] == alert_id].iloc[0]
    st.markdown(
        f"When raised: **{row['group_label']}** "
        f"{fmt.count_pair(row['group_approved'], row['group_applicants'])} approved, "
        f"**{row['reference_label']}** (reference) "
        f"{fmt.count_pair(row['reference_approved'], row['reference_applicants'])} approved; "
        f"approval gap {fmt.number(row['gap'])}; verdict {row['verdict'] or fmt.DASH}"
    )
    engine = data.open_readonly(settings)
    try:
        steps = episode.timeline(engine, alert_id, monitor)
        readings = episode.kept_open(engine, alert_id, monitor)
        token = data.alert_token(engine, alert_id, monitor) if signed_in else None
    finally:
        engine.dispose()
    _timeline(steps)
    if not readings.empty:
        st.caption(
            f"{len(readings)} monitored readings from the one that raised it to its last: "
            f"DIR {fmt.number(readings['dir'].min())} – {fmt.number(readings['dir'].max())}"
        )
        failed = [int(i) for i in readings["reading_id"] if int(i) in (bad or {})]
        if failed:
            st.error(f"✗ Of these, {flags.failing_phrase(len(failed))}: {flags.ids_text(failed)}")
    st.markdown("**Explanation**")
    if not signed_in:  # the key may be readable here: decrypt only for a signed-in reader
        # seen in Chromium: "sign in to read" on a copy whose key folder this page cannot
        # read, where no sign-in can ever decrypt it
        st.info(
            "encrypted — sign in to read (page token, in the sidebar)"
            if key_readable(settings)
            else KEY_UNAVAILABLE
        )
        return
    st.write(explanation(settings, token))


def key_readable(settings: Settings) -> bool:
    """Whether this process can load the alert key (nothing is decrypted here)."""
    try:
        load_cipher(settings.keys.dir, create=False)
    except (FairlensError, OSError):
        return False
    return True


def explanation(settings: Settings, token: str | None) -> str:
    """The decrypted explanation, or why it stays encrypted (never a traceback)."""
    try:
        cipher = load_cipher(settings.keys.dir, create=False)
    except (FairlensError, OSError):  # missing, refused, or a folder this process cannot read
        return KEY_UNAVAILABLE
    try:
        return cipher.decrypt(token or "")
    except FairlensError as exc:
        return f"encrypted — {exc}"


def _timeline(steps: list[episode.Step]) -> None:
    """The episode's audited steps as a table."""
    if not steps:
        st.caption("No audit record of this alert found (pruned, or written before 0.3).")
        return
    what = {ALERT_RAISED: "raised", ALERT_ACKNOWLEDGED: "acknowledged", ALERT_RESOLVED: "resolved"}
    st.markdown(
        "**Timeline** (each step an audit record, its hash as on the chain; Checkpoint: the "
        "signed checkpoint covering it)"
    )
    st.dataframe(
        pd.DataFrame(
            {
                "Step": [what.get(s.event_type, s.event_type) for s in steps],
                "When": [fmt.when(pd.Timestamp(s.ts)) for s in steps],
                "By": [s.by or s.actor for s in steps],
                "Note": [s.note or fmt.DASH for s in steps],
                # seq and hash in one column: at 800 px seven columns cut the last off
                "Audit record": [f"seq {s.seq} · {s.hash[:8]}…" for s in steps],
                "Checkpoint": [
                    "not yet" if s.checkpoint_seq is None else f"seq {s.checkpoint_seq}"
                    for s in steps
                ],
            }
        ),
        hide_index=True,
        width="stretch",
    )
