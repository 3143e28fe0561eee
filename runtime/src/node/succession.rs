//! Succession in a group (issue 16): which backup takes over a lost primary, and the votes
//! that let it.
//!
//! Each node computes the successor from its own view ([`Node::successor`]): the backup
//! with state ranked highest by (in sync, weight, lowest id) among the backups heard within
//! their window (`backup_silence`: a backup that hears its primary heartbeats that much
//! less often), itself included; a witness never. A lagging backup is chosen only when no
//! in-sync one is alive.
//!
//! A pair (two voters) keeps its probe rule (`detector.rs`). With three or more voters,
//! a backup whose primary is silent for its window asks for votes instead of probing, and
//! only when it is the successor in its view ([`VoteRound`]); one that is not waits a
//! probe timeout and looks again. A voter grants ([`Node::vote_grants`]) only if it has
//! not heard the primary within its own window (a live primary is never deposed by a node
//! cut off from it), the epoch asked is above every epoch it knows and at least the
//! highest it granted (one vote per epoch: two candidates never ask the same epoch, the
//! low byte is the candidate's id), and the candidate is the successor in its view or it
//! sees none. The grant is durable before it leaves: [`super::epochs::Epochs::vote`]
//! raises the floor to the epoch with a `ReserveEpoch`, which the shell stores before the
//! next action (the `Vote`). Its own vote and the grants a majority of the voters
//! (`> voters / 2`), the candidate leads the epoch it asked for — so a side of the group
//! without a majority never leads.
//!
//! Work: a successor's view is one pass over at most `GROUP_PEERS_MAX` (3) slots; a round
//! sends one `VoteRequest` on each link (at most `LINKS_TOTAL_MAX`, 12), at most once a
//! probe timeout; a request is answered on its link with one `Vote`. No allocation.

use super::{Epoch, Node, ResyncCause, Role, SyncState, TrafficClass};
use crate::app::App;
use crate::time::Instant;
use crate::wire::{Body, Commit, CommitKind, Header, WireRole, WireSync};

/// A backup's vote round: started when its primary has been silent for its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct VoteRound {
    /// The epoch asked for (this node's reservation); `None`: another backup is the
    /// successor in this node's view, and it waits until `deadline` to look again.
    pub(super) epoch: Option<Epoch>,
    /// The slots that granted it, one bit each.
    pub(super) granted: u8,
    /// When the round is given up (and, the primary still silent, another begins).
    pub(super) deadline: Instant,
    /// A starting node's round to lead from the start-up role, for this reason
    /// (`startup_vote_start`); `None`: a takeover's round.
    pub(super) startup: Option<super::Reason>,
}

/// The rank of a backup as successor: in sync first, then weight, then the lowest id.
type Rank = (bool, u8, core::cmp::Reverse<u8>);

impl<A: App> Node<A> {
    /// Voters: this node and every peer, a witness included (at most 4).
    pub(super) fn voters(&self) -> u8 {
        self.peer_count + 1
    }

    /// Three voters or more: succession by votes. Two: the pair's probe rule.
    pub(super) fn group_votes(&self) -> bool {
        self.voters() >= 3
    }

    /// The id of the successor in this node's view: the live backup with state ranked
    /// highest (in sync, weight, lowest id), this node included; `None` when there is none.
    ///
    /// Weight yields to frames: a member known to hold fewer frames than another — what
    /// it asked for votes with lately (`slot_asked`), or else the last frame its
    /// messages since the primary's last say it ran (its primary silent, a backup runs
    /// every frame it can),
    /// below what another member asked with or what this node can decide itself — is
    /// passed over (it cannot win: the member holding more refuses it as incomplete, and a
    /// successor that never wins left the group waiting for ever; DST `--nodes 3
    /// --witness --liveness --seed 1999`: the heavier backup could decide frames to 645,
    /// the lighter one held 677 and did not stand). A member whose frames it has not
    /// heard of keeps its rank. Work: `frames_held_to` (at most a ring of frames) and one
    /// pass over at most `GROUP_PEERS_MAX` slots.
    pub(super) fn successor(&self) -> Option<u8> {
        let own =
            (self.role == Role::Backup && self.has_state() && !self.config.witness).then(|| self.frames_held_to());
        let ahead = self.frames_asked_ahead().max(own.unwrap_or(0));
        let mut best: Option<(Rank, u8)> = None;
        let mut consider = |rank: Rank, id: u8| {
            if best.is_none_or(|(b, _)| rank > b) {
                best = Some((rank, id));
            }
        };
        // Itself only when it could stand: it holds every frame it knows the group ran
        // (a backup thawed behind its own commits would refuse the others as the
        // successor and not stand itself: DST `--nodes 3 --liveness --seed 328`).
        if own.is_some_and(|held| held >= ahead && self.vote_complete(held)) {
            let rank = (
                self.sync == SyncState::InSync,
                self.config.weight,
                core::cmp::Reverse(self.config.node_id),
            );
            consider(rank, self.config.node_id);
        }
        for (slot, member) in self.config.peers.iter().enumerate().take(usize::from(self.peer_count)) {
            if member.witness {
                continue;
            }
            let Some(status) = self.peers[slot].status else {
                continue;
            };
            // A backup that hears its primary heartbeats `backup_heartbeat_factor` times
            // less often: it is judged over as many windows, as its primary judges it.
            if self.now >= status.last_heard + self.config.backup_silence() {
                continue;
            }
            // What the slot's messages say, and only of the member configured there.
            if status.node_id != member.id
                || status.role != WireRole::Backup
                || !matches!(status.sync, WireSync::InSync | WireSync::Lagging)
            {
                continue;
            }
            // What it can decide: what it asked with, else the last frame it said it ran
            // in a message heard after this node's last from the primary (the primary
            // silent, a backup runs every frame it can; an older message may predate
            // frames it ran since, and says nothing).
            let ran = (status.last_heard > self.primary_heard_at).then_some(status.frame);
            let held = self.slot_asked(slot).max(ran);
            if held.is_some_and(|held| held < ahead) {
                continue;
            }
            let rank = (
                status.sync == WireSync::InSync,
                member.weight,
                core::cmp::Reverse(member.id),
            );
            consider(rank, member.id);
        }
        best.map(|(_, id)| id)
    }

    /// The last frame the member of `slot` said it can decide, when it asked for votes
    /// within twice the longer of a detection window and the start-up wait (a starting
    /// candidate asks once a start-up wait; a backup once a probe timeout). The frames a
    /// member holds do not change while no primary runs.
    fn slot_asked(&self, slot: usize) -> Option<u64> {
        let window = self.config.detection_window().max(self.config.startup_wait()) * 2;
        self.peers[slot]
            .asked
            .filter(|&(at, _)| self.now.saturating_since(at) < window)
            .map(|(_, held)| held)
    }

    /// The most frames any member asked for votes with lately (`slot_asked`; 0: none). Work: one pass over at most `GROUP_PEERS_MAX` slots.
    fn frames_asked_ahead(&self) -> u64 {
        (0..usize::from(self.peer_count))
            .filter_map(|slot| self.slot_asked(slot))
            .max()
            .unwrap_or(0)
    }

    /// A group's backup with state whose primary is silent for its window: asks for votes
    /// if it is the successor in its view, else waits a probe timeout and looks again.
    pub(super) fn vote_start(&mut self) {
        let deadline = self.now + self.config.probe_timeout();
        // Its own vote obeys the completeness rule too: a backup that knows the group ran
        // frames it cannot run as they were decided does not stand (a voter that heard
        // less would elect it).
        let held = self.frames_held_to();
        let candidate = (self.successor() == Some(self.config.node_id) && self.vote_complete(held))
            .then(|| self.epochs.lead_candidate(self.config.node_id))
            .flatten();
        let Some((epoch, _)) = candidate else {
            self.vote = Some(VoteRound {
                epoch: None,
                granted: 0,
                deadline,
                startup: None,
            });
            return;
        };
        // Its own vote: it grants no lower epoch to another from now on.
        self.vote_granted = self.vote_granted.max(epoch);
        self.vote = Some(VoteRound {
            epoch: Some(epoch),
            granted: 0,
            deadline,
            startup: None,
        });
        self.send_all(Body::VoteRequest {
            epoch: epoch.0,
            commit_highest: held,
        });
    }

    /// The round's deadline: given up; the primary still silent, the detector starts the
    /// next one at once (`primary_silence_expiry` has passed).
    pub(super) fn vote_timeout(&mut self) {
        if self.vote.is_some_and(|round| self.now >= round.deadline) {
            self.vote = None;
        }
    }

    /// A `VoteRequest` on `link`: answered there, granted when [`Node::vote_grants`]; a
    /// grant goes out after its durable record.
    pub(super) fn on_vote_request(&mut self, link: u8, header: &Header, epoch: u64, commit_highest: u64) {
        let slot = self.link_peer(link);
        let asked = Epoch(epoch);
        // What a member (not the witness) says it can decide, for the successor's view.
        let member = self
            .config
            .peers
            .get(slot)
            .is_some_and(|m| m.id == header.node_id && !m.witness);
        if member && asked.node_id() == header.node_id {
            self.peers[slot].asked = Some((self.now, commit_highest));
        }
        let granted = ((self.vote_grants(slot, header, asked)
            || self.vote_grants_starting(slot, header, asked, commit_highest))
            && self.vote_complete(commit_highest))
            || self.vote_grants_startup(slot, header, asked, commit_highest);
        if granted {
            if let Some(action) = self.epochs.vote(asked) {
                self.push(action);
            }
            self.vote_granted = asked;
            // The candidate gets a window to lead before this node stands itself.
            self.primary_heard_at = self.now;
            self.vote = None;
        }
        self.send(
            link,
            TrafficClass::Control,
            Body::Vote {
                epoch,
                granted,
                commit_highest: self.commit_highest,
                bar: self.vote_bar().0,
            },
        );
    }

    /// This node's bar as a voter: the highest epoch it has seen, granted, or asked for
    /// itself. It grants nothing below it (one vote per epoch); a `Vote` tells it, so a
    /// candidate it refused asks above it next ([`Node::on_vote`]).
    pub(super) fn vote_bar(&self) -> Epoch {
        self.vote_granted.max(self.epochs.max_seen())
    }

    /// Whether this node grants `epoch` to the peer of `slot` that asks in `header`.
    pub(super) fn vote_grants(&self, slot: usize, header: &Header, epoch: Epoch) -> bool {
        let Some(member) = self.config.peers.get(slot) else {
            return false;
        };
        let candidate = header.node_id;
        // A primary does not vote (a live primary answers: it lives). A starting node that knows how far the group ran (it ran frames, or
        // heard a primary) votes too: a primary demoted or fenced with its state, or a
        // joiner whose primary died, would otherwise leave a group of three without the
        // second vote its complete backup needs. One that knows nothing refuses
        // (`vote_complete`).
        let voting = self.role == Role::Backup || self.role == Role::Starting;
        let may = self.group_votes()
            && voting
            && header.role == WireRole::Backup
            && member.id == candidate
            && !member.witness
            && epoch.node_id() == candidate
            && epoch > self.epochs.max_seen();
        if !may {
            return false;
        }
        if epoch == self.vote_granted {
            // Granted already (durably), its answer lost: the same answer again.
            return true;
        }
        epoch > self.vote_granted
            && self.now.saturating_since(self.primary_heard_at) >= self.config.detection_window()
            && self.successor().is_none_or(|id| id == candidate)
    }

    /// Whether this node grants `epoch` to a *starting* candidate with state (a primary
    /// demoted by a starting peer's epoch, [`Node::starting_vote_start`]) that holds
    /// frames to `commit_highest`: as [`Node::vote_grants`], except that the candidate
    /// need not be the successor in this node's view — it must hold more frames than
    /// this node could decide itself (`frames_held_to`; and, by `vote_complete`, every
    /// frame this node knows the group ran). A backup that holds less cannot stand
    /// itself (the candidate refuses it as incomplete), so without this the group waited
    /// for ever (DST `--nodes 3 --seed 2`, invariant 5: a primary ran on for its
    /// backups' window after a partition, was demoted by a restarted member's
    /// reservation, and the backup in sync lacked its last frames; `--seed 189`: the
    /// backup lacked the last one). This node's own round does not bar the grant: it
    /// gives its round up with it (`on_vote_request`).
    pub(super) fn vote_grants_starting(&self, slot: usize, header: &Header, epoch: Epoch, commit_highest: u64) -> bool {
        let Some(member) = self.config.peers.get(slot) else {
            return false;
        };
        let candidate = header.node_id;
        let may = self.group_votes()
            && (self.role == Role::Backup || self.role == Role::Starting)
            && header.role == WireRole::Starting
            && member.id == candidate
            && !member.witness
            && epoch.node_id() == candidate
            && epoch > self.epochs.max_seen()
            && commit_highest > self.frames_held_to();
        if !may {
            return false;
        }
        let own_round = self.vote.is_some_and(|r| r.epoch == Some(self.vote_granted));
        epoch == self.vote_granted
            || ((epoch > self.vote_granted || own_round)
                && self.now.saturating_since(self.primary_heard_at) >= self.config.detection_window())
    }

    /// Whether this node grants `epoch` to a *starting* candidate asking to lead from the
    /// start-up role (`startup_vote_start`), its frames ending at `commit_highest`. The
    /// voter is starting itself (or the witness, which follows no primary once its own
    /// falls silent) and sees what the candidate's start-up rule sees: no primary heard
    /// within its window, and no live peer that will lead or take over (a primary, or a
    /// backup with state). One grant a detection window, as a takeover's: the candidate
    /// gets that window to lead, and two candidates on two sides of a partition never
    /// both gather a majority. The candidate must hold every frame this voter knows the
    /// group ran; a voter that knows none grants only a candidate without state — a
    /// cold start among members that know nothing (a candidate with state may be stale,
    /// and such a voter cannot tell: `vote_complete`).
    pub(super) fn vote_grants_startup(&self, slot: usize, header: &Header, epoch: Epoch, commit_highest: u64) -> bool {
        let Some(member) = self.config.peers.get(slot) else {
            return false;
        };
        let candidate = header.node_id;
        let voting = self.role == Role::Starting || (self.config.witness && self.role == Role::Backup);
        let may = self.group_votes()
            && voting
            && header.role == WireRole::Starting
            && member.id == candidate
            && !member.witness
            && epoch.node_id() == candidate
            && epoch > self.epochs.max_seen();
        if !may {
            return false;
        }
        if epoch == self.vote_granted {
            // Granted already (durably), its answer lost: the same answer again.
            return true;
        }
        let known = if self.config.witness {
            self.primary_frame_heard
        } else {
            self.frames_known()
        };
        let complete = if known == 0 {
            header.origin == 0
        } else {
            commit_highest >= known
        };
        let holder = (0..usize::from(self.peer_count)).any(|slot| {
            self.slot_alive(slot)
                && self.peers[slot].status.is_some_and(|p| {
                    p.role == WireRole::Primary
                        || (p.role == WireRole::Backup && matches!(p.sync, WireSync::InSync | WireSync::Lagging))
                })
        });
        epoch > self.vote_granted
            && complete
            && !holder
            && self.now.saturating_since(self.primary_heard_at) >= self.config.detection_window()
    }

    /// Log completeness (Raft's rule on our frames): a candidate whose commits end at
    /// `commit_highest` holds every frame this voter knows the group ran — the commits it
    /// holds itself, and the highest frame a primary told it it ran
    /// (`primary_frame_heard`): outputs of a frame may have gone out as soon as the primary
    /// ran it, and a successor without its commit would decide it anew, from other input
    /// or none, two contents for one id. A witness holds no commits: what it heard from
    /// the primary is its whole say, so one that has heard no primary since it started
    /// grants nothing (it cannot tell a stale candidate from a complete one). The price:
    /// a candidate that lost the dead primary's last commit while a voter heard of that
    /// frame is refused, and the group waits for the primary or an operator.
    ///
    /// The frames this node ran itself count too (`frame_last_run`): a primary demoted by
    /// a starting peer's higher epoch (`fence`) ran them all but heard no primary tell
    /// of them, and its joining dropped its commits — counted as knowing nothing, it
    /// refused every candidate, and a group of three whose third member restarted cold
    /// had no majority for its in-sync backup (DST `--nodes 3 --seed 0`, invariant 5;
    /// `chaos --nodes 3 --faults 200 --seed 1`, fault #165).
    pub(super) fn vote_complete(&self, commit_highest: u64) -> bool {
        let known = self.frames_known();
        if self.config.witness && self.primary_frame_heard == 0 {
            return false;
        }
        if self.role == Role::Starting && known == 0 {
            // Restarted, it knows nothing of how far the group ran.
            return false;
        }
        commit_highest >= known
    }

    /// The highest frame this node knows the group ran: its highest commit, the highest
    /// frame a primary said it ran, the last frame it ran itself (`vote_complete`).
    pub(super) fn frames_known(&self) -> u64 {
        self.commit_highest
            .max(self.primary_frame_heard)
            .max(self.frame_last_run)
    }

    /// The last frame this node can decide as its primary did, in a row from the last it
    /// ran: each next one skipped by a commit, or committed with its input in the ring. A
    /// commit without its input is not enough (a backup frozen while the frames went by
    /// holds the commits but would skip the frames at takeover: DST `--nodes 2 --witness
    /// --seed 109`). What a candidate's `VoteRequest` carries as `commit_highest`. Work:
    /// at most one ring's worth of frames (`frames_buffered`), once per vote round.
    pub(super) fn frames_held_to(&self) -> u64 {
        let mut held = self.frame_last_run;
        let last = self
            .commit_highest
            .min(self.frame_last_run.saturating_add(self.ring.capacity()));
        while held < last {
            let next = held + 1;
            match self.ring.commit(next).map(|c| c.kind) {
                Some(CommitKind::Skipped { last: skipped }) => held = skipped.clamp(next, last),
                Some(CommitKind::Ran { input_digest, .. })
                    if self.ring.payload_matching(next, input_digest).is_some() =>
                {
                    held = next
                }
                _ => break,
            }
        }
        held
    }

    /// Remembers how far a primary said it ran (`primary_frame_heard`), from a message
    /// that passed the epoch rules.
    pub(super) fn note_primary_frame(&mut self, header: &Header) {
        if header.role == WireRole::Primary {
            self.primary_frame_heard = self.primary_frame_heard.max(header.frame);
        }
    }

    /// A group's primary runs frames (and emits their outputs) only while it hears a
    /// majority of its voters, itself included, each within its window: one cut off with
    /// a minority holds its frames, as a Raft leader without a quorum commits nothing,
    /// since the majority's side elects a successor that decides them anew. A pair has
    /// no majority to ask: its primary always runs.
    pub(super) fn primary_quorum_heard(&self) -> bool {
        if !self.group_votes() {
            return true;
        }
        if self.quorum_hold_until.is_some_and(|until| self.now < until) {
            return false;
        }
        let live = (0..usize::from(self.peer_count))
            .filter(|&slot| self.slot_alive(slot))
            .count();
        (1 + live) * 2 > usize::from(self.voters())
    }

    /// A group's primary that ran nothing for a detection window (frozen, starved): its
    /// voters may have elected a successor meanwhile, and the messages it reads first
    /// are its socket's backlog, which would count its peers as heard now. It holds its
    /// frames for its peers' window, until what it heard before the stall has expired
    /// and only fresh messages make a majority (DST `--nodes 4 --seed 1886`: a primary
    /// thawed in a minority ran the frames it missed as skipped, beside its successor).
    pub(super) fn quorum_after_stall(&mut self, gap: core::time::Duration) {
        if self.role == Role::Primary && self.group_votes() && gap >= self.config.detection_window() {
            self.quorum_hold_until = Some(self.now + self.config.backup_silence());
        }
    }

    /// A `Vote` on `link`: a grant of this node's round counts; with a majority of the
    /// voters this node takes over in the epoch it asked for.
    ///
    /// A refusal whose voter's `bar` is at or above the epoch asked ends the round: that
    /// voter grants nothing at or below its bar (it granted it, or stood itself, in a
    /// round whose other answers were lost — a backup cut off from the group stands
    /// alone), so this node reserves an epoch above the bar, stored before the next
    /// action, and asks it in the next round. Without it the group waited for ever
    /// (`chaos --nodes 3 --faults 40 --seed 3`, fault #19: node 3, cut off, stood at
    /// 14.3 and healed; the primary killed, node 2 asked 14.2 again and again). A bar
    /// above `EPOCH_MAX` is ignored; each refusal that counts raises the ask, so a round
    /// restarts at most once per distinct bar.
    ///
    /// A backup refused by so many voters holding commits past its frames that the rest
    /// cannot make a majority gives up standing and rejoins (`vote_outrun`).
    pub(super) fn on_vote(
        &mut self,
        link: u8,
        header: &Header,
        epoch: u64,
        granted: bool,
        commit_highest: u64,
        bar: u64,
    ) {
        let slot = self.link_peer(link);
        let Some(round) = &mut self.vote else {
            return;
        };
        let from_member = self.config.peers.get(slot).is_some_and(|m| m.id == header.node_id);
        let candidate = self.role == Role::Backup || self.role == Role::Starting;
        if !from_member || round.epoch != Some(Epoch(epoch)) || !candidate {
            return;
        }
        if !granted {
            self.peers[slot].outran = Some((self.now, commit_highest));
            if self.role == Role::Backup && self.has_state() && self.vote_outrun() {
                self.vote = None;
                self.start_join(Some(ResyncCause::Lag));
                return;
            }
            if bar >= epoch && bar <= super::EPOCH_MAX {
                self.vote = None;
                if let Some(action) = self.epochs.reserve_above(Epoch(bar), self.config.node_id) {
                    self.push(action);
                }
            }
            return;
        }
        round.granted |= 1 << slot;
        let votes = 1 + round.granted.count_ones();
        let startup = round.startup;
        if votes * 2 <= u32::from(self.voters()) {
            return;
        }
        self.vote = None;
        // The epoch it was granted must still be the one it would lead (a higher one
        // heard since makes the votes moot: the next round asks above it).
        if self.epochs.lead_candidate(self.config.node_id).map(|(e, _)| e) == Some(Epoch(epoch)) {
            match (self.role, startup) {
                // A start-up round leads as the start-up rule does (its cold-start hold
                // checked again), and only from the start-up role.
                (Role::Starting, Some(reason)) => self.lead_from_start(reason),
                (_, Some(_)) => {}
                (Role::Starting, None) => self.become_primary(super::Reason::TakeoverAfterProbe),
                (_, None) => self.take_over(super::Reason::TakeoverAfterProbe),
            }
        }
    }

    /// Whether this node's vote rounds can no longer win: the voters that refused it
    /// within a detection window while holding commits past the frames it can decide
    /// (`frames_held_to`) leave too few others for a majority. Such a voter refuses it
    /// as incomplete (`vote_complete`) for as long as this node lacks those frames, and a
    /// backup whose primary is silent gains none: it would stand for ever, reporting
    /// itself in sync at a frame the group ran past long ago, while the others follow a
    /// primary it does not (DST `--nodes 4 --seed 3002`: node 3, cut off with a starting
    /// member, asked for votes at frame 190 to the end of the run, the primary at 1,100
    /// took it for its successor and its switchover to it failed). It rejoins instead:
    /// its state is of no use to the group, and a transfer brings the group's. Work: a
    /// ring's worth of frames (`frames_held_to`) and one pass over at most
    /// `GROUP_PEERS_MAX` slots, once per refusal.
    pub(super) fn vote_outrun(&self) -> bool {
        let held = self.frames_held_to();
        let window = self.config.detection_window();
        let outrun = (0..usize::from(self.peer_count))
            .filter(|&slot| {
                self.peers[slot]
                    .outran
                    .is_some_and(|(at, commit)| self.now.saturating_since(at) < window && commit > held)
            })
            .count();
        let voters = usize::from(self.voters());
        let hopeful = voters.saturating_sub(1 + outrun);
        (1 + hopeful) * 2 <= voters
    }

    /// The member of `slot` is the group's witness.
    pub(super) fn slot_is_witness(&self, slot: usize) -> bool {
        self.config.peers.get(slot).is_some_and(|m| m.witness)
    }

    /// A group's start-up decision, past the refusal check of `election_timeout`: a
    /// starting node waits while any live peer that may lead is a primary or a backup
    /// with state (it will lead, or take over), or a starting one at or above its
    /// tiebreak (holds state, priority, nonce; a tie redraws), or while it hears less
    /// than a majority of the voters (itself included; an operator's `force-primary`
    /// still leads); else it leads. A witness never leads: it waits for a primary to
    /// follow (`election_on_header`).
    pub(super) fn group_election_timeout(&mut self) {
        let again = Some(self.now + self.config.startup_wait());
        if self.config.witness {
            self.startup_deadline = again;
            return;
        }
        let holds = |origin: u64| origin != 0;
        let mine = (holds(self.origin.0), self.config.priority, self.nonce);
        let (mut wait, mut tie, mut contest) = (false, false, false);
        for slot in 0..usize::from(self.peer_count) {
            if self.slot_is_witness(slot) || !self.slot_alive(slot) {
                continue;
            }
            let Some(status) = self.peers[slot].status else {
                continue;
            };
            match (status.role, status.sync) {
                (WireRole::Primary, _) | (WireRole::Backup, WireSync::InSync | WireSync::Lagging) => wait = true,
                (WireRole::Starting, _) => {
                    contest = true;
                    let theirs = (holds(status.origin), self.peers[slot].priority, self.peers[slot].nonce);
                    wait |= theirs >= mine;
                    tie |= theirs == mine;
                }
                _ => {}
            }
        }
        if tie {
            self.redraw_nonce();
        }
        // State made under an epoch below one seen since: a later primary may have run
        // (and emitted) frames past it — leading from it would decide them anew (DST
        // `--nodes 3 --seed 77`: a primary fenced, then its successor lost while it was
        // joining, led with its old state beside the holder's restart). It waits for a
        // backup of the newer history, or an operator.
        // A node that gave its origin up (fenced by another cold start's primary) but
        // ran frames leads from them just the same: judged alike, and by how far a
        // primary said it ran (DST `--nodes 2 --witness --seed 1220`).
        let ran = self.origin.0 != 0 || self.frame_last_run != 0;
        let behind = self.frame_last_run < self.primary_frame_heard;
        let stale = ran && (self.state_epoch < self.epochs.max_seen() || behind);
        let primary = (0..usize::from(self.peer_count))
            .any(|slot| self.slot_alive(slot) && self.peers[slot].status.is_some_and(|p| p.role == WireRole::Primary));
        if (stale || wait) && ran && !behind && !primary && self.origin.0 != 0 {
            // State that may be the group's newest, beside backups that may lack its last
            // frames: it asks the voters, who grant it only if it holds more than they
            // know the group ran (`vote_grants_starting`).
            self.starting_vote_start();
        }
        wait |= stale;
        // A group leads from the start only where a majority of its voters is heard: a
        // node cut off (or alone after a restart) must not lead beside the majority.
        let live = (0..usize::from(self.peer_count))
            .filter(|&slot| self.slot_alive(slot))
            .count();
        let majority = (1 + live) * 2 > usize::from(self.voters());
        if wait || !majority {
            self.startup_deadline = again;
            return;
        }
        let reason = if contest {
            super::Reason::WonTiebreak
        } else {
            super::Reason::StartedFirst
        };
        self.startup_vote_start(reason);
    }

    /// A group's starting node that would lead from the start-up role asks the voters
    /// first, and leads (`lead_from_start`, for `reason`) only with a majority's grants
    /// (`on_vote`; `vote_grants_startup`), as a takeover does. Hearing a majority is not
    /// enough: a peer heard a moment ago may be on the other side of a partition since,
    /// counted by a member there too (DST `--nodes 3 --witness --seed 1902`: a start-up
    /// partition into halves regrouped as {1,2}|{3,4}, and node 2 and node 3 each led
    /// from the start, `WonTiebreak`, having heard the new side and a peer of the old
    /// one 3 ms before: two primaries for 145 ms). Its epoch is reserved, durable before
    /// it asks (a restart never asks the same epoch of another history); one round at a
    /// time, none within a detection window of a grant of its own (the candidate it
    /// granted leads meanwhile). The decision is taken again a start-up wait later.
    pub(super) fn startup_vote_start(&mut self, reason: super::Reason) {
        self.startup_deadline = Some(self.now + self.config.startup_wait());
        let granted_lately = self.now.saturating_since(self.primary_heard_at) < self.config.detection_window();
        if self.vote.is_some() || granted_lately || self.cold_start_held() {
            return;
        }
        self.reserve_epoch();
        let Some((epoch, _)) = self.epochs.lead_candidate(self.config.node_id) else {
            // None above `EPOCH_MAX`: `become_primary` alarms it.
            self.become_primary(reason);
            return;
        };
        let held = self.frames_held_to();
        self.vote_granted = self.vote_granted.max(epoch);
        self.vote = Some(VoteRound {
            epoch: Some(epoch),
            granted: 0,
            deadline: self.now + self.config.probe_timeout(),
            startup: Some(reason),
        });
        self.send_all(Body::VoteRequest {
            epoch: epoch.0,
            commit_highest: held,
        });
    }

    /// A group's starting node with state asks for votes, one round at a time: its frames
    /// from the last it ran (its commits went with its joining). With a majority it leads
    /// from its state (`on_vote`). The votes make it safe where the start-up rule waits:
    /// a voter that heard a later primary run past it refuses (`vote_complete`).
    pub(super) fn starting_vote_start(&mut self) {
        if self.vote.is_some() || self.config.witness {
            return;
        }
        let Some((epoch, _)) = self.epochs.lead_candidate(self.config.node_id) else {
            return;
        };
        let held = self.frames_held_to();
        self.vote_granted = self.vote_granted.max(epoch);
        self.vote = Some(VoteRound {
            epoch: Some(epoch),
            granted: 0,
            deadline: self.now + self.config.probe_timeout(),
            startup: None,
        });
        self.send_all(Body::VoteRequest {
            epoch: epoch.0,
            commit_highest: held,
        });
    }

    /// Every peer of the group that may lead is alive and has said it holds no state for
    /// `wait`: the whole group restarted (a group's cold start, as a pair's
    /// `pair_peer_cold`). One not heard may hold the state behind a partition.
    pub(super) fn group_peers_cold(&self, wait: core::time::Duration) -> bool {
        (0..usize::from(self.peer_count)).all(|slot| {
            let slot_state = &self.peers[slot];
            self.slot_is_witness(slot)
                || (self.slot_alive(slot)
                    && slot_state.status.is_some_and(|p| p.origin == 0)
                    && slot_state
                        .cold_since
                        .is_some_and(|since| self.now.saturating_since(since) >= wait))
        })
    }

    /// A group's backup with state that hears a new primary of its own cold start follows
    /// it without a transfer: the commits of the frames it holds tell whether their
    /// histories differ (`vote_check_commit`).
    pub(super) fn group_follows_without_transfer(&self, origin: u64) -> bool {
        self.group_votes() && self.has_state() && origin == self.origin.0
    }

    /// A group's backup that followed a new primary without a transfer: a commit of a
    /// frame it ran that differs in its input from the one it holds (run on other input,
    /// or skipped) means their states differ: it rejoins with a transfer.
    pub(super) fn vote_check_commit(&mut self, header: &Header, commit: &Commit) {
        if self.config.witness {
            // A witness holds no state and takes no commit (`on_commit` returns).
            return;
        }
        if !self.group_votes()
            || self.role != Role::Backup
            || !self.has_state()
            || header.role != WireRole::Primary
            || header.epoch != self.epochs.current().0
            || commit.frame > self.frame_last_run
        {
            return;
        }
        let Some(held) = self.ring.commit(commit.frame) else {
            return;
        };
        let input = |kind: CommitKind| match kind {
            CommitKind::Ran { input_digest, .. } => Some(input_digest),
            CommitKind::Skipped { .. } => None,
        };
        if input(held.kind) != input(commit.kind) {
            self.start_join(Some(ResyncCause::Divergence));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, GroupPeer};
    use crate::node::{Action, Reason};
    use crate::testing::Pair;
    use crate::wire::{self, Envelope};
    use core::time::Duration;

    /// A running pair (node 1 primary, node 2 its backup in sync, one link each) in which
    /// node 2 becomes a member of a group: node 1 on its link 0 and, on links 1 and 2,
    /// `others` (id, weight, witness) that the test speaks for. Node 1 keeps the pair's
    /// layout, its fingerprint the group's: it pairs on with node 2 as before.
    fn group(others: &[(u8, u8, bool)], weight: u8) -> Pair {
        let config = Config {
            links: 1,
            ..Config::fast()
        };
        group_of(config, others, weight)
    }

    /// As [`group`], both nodes with `config` (one link).
    fn group_of(config: Config, others: &[(u8, u8, bool)], weight: u8) -> Pair {
        let mut p = Pair::new(16, config, 0);
        let limit = Duration::from_millis(2000);
        p.start(0);
        let until = p.now + limit;
        assert!(p.run_until(until, |p| p.node(0).role() == Role::Primary));
        p.start(1);
        let until = p.now + limit;
        assert!(p.run_until(until, |p| p.node(1).status().sync == SyncState::InSync));
        let node = p.nodes[1].as_mut().unwrap();
        node.config.weight = weight;
        node.config.peers = core::iter::once((1, 1, false))
            .chain(others.iter().copied())
            .map(|(id, weight, witness)| GroupPeer {
                id,
                weight,
                witness,
                links: 1,
            })
            .collect();
        let (mut slots, link_peer, count) = super::super::peers::slots_for(&node.config);
        slots[0] = node.peers[0];
        node.peers = slots;
        node.link_peer = link_peer;
        node.peer_count = count;
        let identity = p.identities[1];
        let fingerprint = super::super::pairing::fingerprint(&identity, false, node.config.group_digest());
        node.fingerprint = fingerprint;
        p.nodes[0].as_mut().unwrap().fingerprint = fingerprint;
        p.capture = true;
        p
    }

    /// Bytes from the test's member `id` as node 2 would hear them.
    fn from(p: &Pair, id: u8, role: WireRole, sync: WireSync, epoch: u64, body: Body) -> wire::WireBuf {
        from_at(p, id, role, sync, epoch, p.node(1).frame(), body)
    }

    /// As [`from`], its header saying member `id` ran to `frame`.
    fn from_at(
        p: &Pair,
        id: u8,
        role: WireRole,
        sync: WireSync,
        epoch: u64,
        frame: u64,
        mut body: Body,
    ) -> wire::WireBuf {
        let node = p.node(1);
        // As member `id` announces itself on its link to node 2 (`pairing::fingerprint_for`).
        if let (Body::Heartbeat { fingerprint, .. }, Some(slot)) =
            (&mut body, node.config.peers.iter().position(|m| m.id == id))
        {
            *fingerprint = node.fingerprint_for(slot);
        }
        let header = Header {
            session: 0,
            seq: 0,
            node_id: id,
            role,
            epoch,
            sync,
            frame,
            origin: node.origin.0,
        };
        wire::encode(&Envelope { header, body }, None).unwrap()
    }

    fn heartbeat(p: &Pair) -> Body {
        Body::Heartbeat {
            nonce: 3,
            priority: 0,
            sent_ns: 1,
            echo_ns: 0,
            echo_hold_ns: 0,
            input_frame: 0,
            input_age_ms: u64::MAX,
            fingerprint: p.node(1).fingerprint,
            challenge: 0,
            challenge_echo: 0,
        }
    }

    /// Runs `duration` a millisecond at a time, member `id` (on `link`) heartbeating as
    /// a backup in sync following node 2's epoch.
    fn run_with_backup(p: &mut Pair, id: u8, link: u8, duration: Duration) {
        let until = p.now + duration;
        while p.now < until {
            let epoch = p.node(1).epoch();
            let bytes = from(p, id, WireRole::Backup, WireSync::InSync, epoch, heartbeat(p));
            p.inject(1, link, &bytes);
            p.run_for(Duration::from_millis(1));
        }
    }

    /// How far node 2 knows the group ran: a candidate as complete as that.
    fn complete(p: &Pair) -> u64 {
        let node = p.node(1);
        node.commit_highest.max(node.primary_frame_heard)
    }

    /// The epochs node 2 asked votes for, on `link`.
    fn vote_requests(p: &Pair, link: u8) -> std::vec::Vec<u64> {
        p.captured
            .iter()
            .filter(|(i, l, _)| *i == 1 && *l == link)
            .filter_map(|(_, _, bytes)| match wire::decode(bytes, None).map(|e| e.body) {
                Ok(Body::VoteRequest { epoch, .. }) => Some(epoch),
                _ => None,
            })
            .collect()
    }

    /// Node 2's answers on `link`: (epoch, granted).
    fn votes(p: &Pair, link: u8) -> std::vec::Vec<(u64, bool)> {
        p.captured
            .iter()
            .filter(|(i, l, _)| *i == 1 && *l == link)
            .filter_map(|(_, _, bytes)| match wire::decode(bytes, None).map(|e| e.body) {
                Ok(Body::Vote { epoch, granted, .. }) => Some((epoch, granted)),
                _ => None,
            })
            .collect()
    }

    /// Of three voters, the successor whose primary died asks for votes instead of taking
    /// over on its probe: alone (one vote of three) it never leads; one grant makes a
    /// majority and it leads the epoch it asked for. (The old code took over alone.)
    #[test]
    fn backup_primary_lost_group_leads_only_with_a_majority() {
        let mut p = group(&[(3, 1, false)], 5);
        p.crash(0);
        run_with_backup(&mut p, 3, 1, Duration::from_millis(40));
        assert_eq!(p.node(1).role(), Role::Backup, "one vote of three: no takeover");
        let asked = vote_requests(&p, 1);
        assert!(asked.len() >= 2, "asked again each probe timeout: {asked:?}");
        let epoch = asked[asked.len() - 1];
        assert_eq!(Epoch(epoch).node_id(), 2);
        assert!(epoch > p.node(1).epoch(), "above the epoch it followed");
        let grant = from(
            &p,
            3,
            WireRole::Backup,
            WireSync::InSync,
            p.node(1).epoch(),
            Body::Vote {
                epoch,
                granted: true,
                commit_highest: 0,
                bar: epoch,
            },
        );
        p.inject(1, 1, &grant);
        assert_eq!(p.node(1).role(), Role::Primary);
        assert_eq!(p.node(1).epoch(), epoch);
        let reason = p.transitions.iter().rev().find(|(i, _)| *i == 1).map(|(_, t)| t.reason);
        assert_eq!(reason, Some(Reason::TakeoverAfterProbe));
    }

    fn drop_released(_: usize, envelope: &Envelope) -> bool {
        matches!(envelope.body, Body::Released { .. })
    }

    /// Acked release in a group: a backup hears the other backups' acks (their headers
    /// say the frames they ran, in sync, in its epoch) and keeps none of them. Elected, it
    /// holds the outputs of its takeover (its unsent set: what the old primary never said
    /// released) until a backup acknowledges their frames in its own epoch. (Mutant
    /// `release.rs:241:39` `||` → `&&` in `release_note_ack`: a backup in acked mode kept
    /// member 3's acks of the old epoch and, once it led, released its unsent set on them
    /// at once, counted guarded, before member 3 followed it: had it died then, member 3,
    /// elected, would send them again. Schemata run of 64df4f8, 2026-11-27.)
    #[test]
    fn backup_group_acked_elected_holds_its_unsent_outputs_for_an_ack_of_its_epoch() {
        let config = Config {
            links: 1,
            outputs_release: crate::config::OutputsRelease::Acked,
            ..Config::fast()
        };
        let mut p = group_of(config, &[(3, 1, false)], 5);
        // The old primary's `Released` words are lost: node 2 keeps the outputs unsent.
        p.drop_if = Some(drop_released);
        run_with_backup(&mut p, 3, 1, Duration::from_millis(20));
        let unsent = p.node(1).status().unsent_outputs;
        assert!(unsent > 0, "no output unsent");
        p.crash(0);
        run_with_backup(&mut p, 3, 1, Duration::from_millis(40));
        let epoch = *vote_requests(&p, 1).last().expect("asked");
        let grant = Body::Vote {
            epoch,
            granted: true,
            commit_highest: 0,
            bar: epoch,
        };
        let bytes = from(&p, 3, WireRole::Backup, WireSync::InSync, p.node(1).epoch(), grant);
        let offered = p.sink.raw;
        p.inject(1, 1, &bytes);
        assert_eq!((p.node(1).role(), p.node(1).epoch()), (Role::Primary, epoch));
        let release = p.node(1).outputs_release_status();
        assert!(release.held >= unsent, "held {} of {unsent} unsent", release.held);
        assert_eq!(p.sink.raw, offered, "sent before member 3 followed");
        // Member 3 follows, its header its ack in the new epoch: they go.
        run_with_backup(&mut p, 3, 1, Duration::from_millis(2));
        assert!(p.sink.raw >= offered + unsent, "{} sent", p.sink.raw - offered);
    }

    /// Node 2 of a group with a lighter node 3, its primary crashed, asking node 3 for
    /// votes: the pair and the epoch it last asked.
    fn candidate_asking() -> (Pair, u64) {
        let mut p = group(&[(3, 1, false)], 5);
        p.crash(0);
        run_with_backup(&mut p, 3, 1, Duration::from_millis(20));
        let asked = *vote_requests(&p, 1).last().expect("asked");
        (p, asked)
    }

    /// Member 3 refuses node 2's round of `asked`, telling its bar.
    fn refuse_with_bar(p: &mut Pair, asked: u64, bar: u64) {
        let refusal = Body::Vote {
            epoch: asked,
            granted: false,
            commit_highest: 0,
            bar,
        };
        let followed = p.node(1).epoch();
        let bytes = from(p, 3, WireRole::Backup, WireSync::InSync, followed, refusal);
        p.inject(1, 1, &bytes);
    }

    /// A refusal whose voter's bar is at or above the epoch asked (the voter stood
    /// itself there while cut off, and kept it) ends the round: the candidate reserves
    /// the next epoch above the bar, stored before it asks, asks it at once, and leads it
    /// on a grant. (The old code asked the refused epoch again every probe timeout, and
    /// the group had no primary for ever: `chaos --nodes 3 --faults 40 --seed 3`.)
    #[test]
    fn backup_voting_refused_below_voter_bar_asks_above_it_leads() {
        let (mut p, asked) = candidate_asking();
        let followed = p.node(1).epoch();
        // Node 3 stood at the term above while cut off: 0x..03 > 0x..02.
        let bar = Epoch(asked).term() << 8 | 3;
        refuse_with_bar(&mut p, asked, bar);
        let above = Epoch(bar).next(2).unwrap();
        assert_eq!(p.reserved[1], above.0, "reserved above the bar, in the state file");
        run_with_backup(&mut p, 3, 1, Duration::from_millis(2));
        let asks = vote_requests(&p, 1);
        assert_eq!(asks.last(), Some(&above.0), "asked above the bar at once: {asks:?}");
        let grant = Body::Vote {
            epoch: above.0,
            granted: true,
            commit_highest: 0,
            bar: above.0,
        };
        let bytes = from(&p, 3, WireRole::Backup, WireSync::InSync, followed, grant);
        p.inject(1, 1, &bytes);
        assert_eq!(p.node(1).role(), Role::Primary);
        assert_eq!(p.node(1).epoch(), above.0);
    }

    /// A refusal below the epoch asked (the voter hears the primary, or lacks frames)
    /// leaves the round as it is; a bar above `EPOCH_MAX` is ignored.
    #[test]
    fn backup_voting_refused_bar_below_or_out_of_range_round_kept() {
        let (mut p, asked) = candidate_asking();
        for bar in [asked - 1, crate::node::EPOCH_MAX + 1, u64::MAX] {
            refuse_with_bar(&mut p, asked, bar);
            let round = p.node(1).vote.map(|r| r.epoch);
            assert_eq!(round, Some(Some(Epoch(asked))), "bar {bar:#x}");
        }
    }

    /// A refusal, or a grant of another epoch, counts for nothing.
    #[test]
    fn backup_voting_refusal_or_other_epoch_no_takeover() {
        let (mut p, epoch) = candidate_asking();
        let followed = p.node(1).epoch();
        for (asked, granted) in [(epoch, false), (epoch + 256, true), (epoch - 1, true)] {
            let vote = Body::Vote {
                epoch: asked,
                granted,
                commit_highest: 0,
                bar: 0,
            };
            let bytes = from(&p, 3, WireRole::Backup, WireSync::InSync, followed, vote);
            p.inject(1, 1, &bytes);
            assert_eq!(p.node(1).role(), Role::Backup, "vote ({asked:#x}, {granted})");
        }
    }

    /// A backup that is not the successor in its view (a heavier one in sync is alive)
    /// asks nobody, and grants the heavier one's request once its own window passed
    /// without the primary — the grant stored (a reservation at its epoch) before it
    /// leaves; while the primary is heard it refuses.
    #[test]
    fn backup_not_successor_waits_and_grants_after_its_window() {
        let mut p = group(&[(3, 10, false)], 5);
        let followed = p.node(1).epoch();
        let candidate = Epoch(followed).next(3).unwrap().0;
        let request = Body::VoteRequest {
            epoch: candidate,
            commit_highest: complete(&p),
        };
        let bytes = from(&p, 3, WireRole::Backup, WireSync::InSync, followed, request.clone());
        p.inject(1, 1, &bytes);
        assert_eq!(votes(&p, 1), [(candidate, false)], "the primary is alive");
        p.crash(0);
        run_with_backup(&mut p, 3, 1, Duration::from_millis(30));
        assert!(vote_requests(&p, 1).is_empty(), "node 3 is the successor");
        assert_eq!(p.node(1).role(), Role::Backup);
        // Straight from the node: the durable record, then the grant.
        let now = p.now;
        let bytes = from(&p, 3, WireRole::Backup, WireSync::InSync, followed, request);
        let node = p.nodes[1].as_mut().unwrap();
        node.handle_message(now, 1, &bytes);
        let actions: std::vec::Vec<Action> = core::iter::from_fn(|| node.poll_action()).collect();
        let reserve = actions.iter().position(|a| *a == Action::ReserveEpoch(candidate));
        let grant = actions.iter().position(|a| match a {
            Action::Transmit { bytes, link: 1, .. } => matches!(
                wire::decode(bytes, None).map(|e| e.body),
                Ok(Body::Vote { granted: true, epoch, .. }) if epoch == candidate
            ),
            _ => false,
        });
        assert!(reserve.is_some() && grant.is_some() && reserve < grant, "{actions:?}");
    }

    /// One vote per epoch: after granting node 3's epoch, node 2 refuses a lower one of
    /// node 4 (even as its successor) and grants node 3's again (a lost answer asked
    /// again).
    #[test]
    fn backup_voted_lower_epoch_refused_same_granted_again() {
        let mut p = group(&[(3, 10, false), (4, 20, false)], 5);
        let followed = p.node(1).epoch();
        p.crash(0);
        run_with_backup(&mut p, 3, 1, Duration::from_millis(30));
        // Node 4 was never heard: node 3 is the successor.
        let three = Epoch(followed).next(3).unwrap().0 + 256;
        let four = Epoch(followed).next(4).unwrap().0;
        assert!(four < three);
        let ask = |p: &mut Pair, id: u8, link: u8, epoch: u64| {
            let request = Body::VoteRequest {
                epoch,
                commit_highest: complete(p),
            };
            let bytes = from(p, id, WireRole::Backup, WireSync::InSync, followed, request);
            p.inject(1, link, &bytes);
        };
        ask(&mut p, 3, 1, three);
        assert_eq!(votes(&p, 1), [(three, true)]);
        ask(&mut p, 4, 2, four);
        assert_eq!(votes(&p, 2), [(four, false)]);
        let bars: std::vec::Vec<u64> = p
            .captured
            .iter()
            .filter(|(i, l, _)| *i == 1 && *l == 2)
            .filter_map(|(_, _, bytes)| match wire::decode(bytes, None).map(|e| e.body) {
                Ok(Body::Vote { bar, .. }) => Some(bar),
                _ => None,
            })
            .collect();
        assert_eq!(
            bars,
            [three],
            "the refusal tells the epoch granted: node 4 asks above it"
        );
        ask(&mut p, 3, 1, three);
        assert_eq!(votes(&p, 1), [(three, true), (three, true)]);
    }

    /// A voter grants only an epoch above every epoch it has seen: once a restarted
    /// member announced the epoch member 3 asks (a vote it gave before its restart,
    /// its floor), node 2 refuses it to member 3 as a backup and as a starting member
    /// holding more frames, its bar that epoch, and member 3 asks above it. (Mutants
    /// `succession.rs:261:22` `>` → `>=` in `vote_grants` and `297:22` in
    /// `vote_grants_starting`: an epoch equal to the highest seen was granted. No
    /// plant effect found: only member 3 can lead an epoch that names it, and it never
    /// asks one it has led. Schemata run of 64df4f8, 2026-11-27.)
    #[test]
    fn backup_voting_epoch_announced_by_a_restarted_member_refused() {
        let mut p = group(&[(3, 10, false), (4, 1, false)], 5);
        let followed = p.node(1).epoch();
        p.crash(0);
        run_with_backup(&mut p, 3, 1, Duration::from_millis(30));
        let asked = Epoch(followed).next(3).unwrap().0;
        let announce = from(&p, 4, WireRole::Starting, WireSync::NotApplicable, asked, heartbeat(&p));
        p.inject(1, 2, &announce);
        assert_eq!(p.node(1).epochs.max_seen(), Epoch(asked));
        let held = p.node(1).frames_held_to();
        for (role, sync, commit_highest) in [
            (WireRole::Backup, WireSync::InSync, complete(&p)),
            (WireRole::Starting, WireSync::NotApplicable, held + 5),
        ] {
            let request = Body::VoteRequest {
                epoch: asked,
                commit_highest,
            };
            let bytes = from(&p, 3, role, sync, followed, request);
            p.inject(1, 1, &bytes);
        }
        assert_eq!(votes(&p, 1), [(asked, false), (asked, false)]);
        assert_eq!(p.node(1).vote_bar(), Epoch(asked));
    }

    /// A backup that is not the successor in its view — a heavier member in sync says it
    /// ran as far — refuses a lighter backup's request though it holds more frames than
    /// this node: only a *starting* candidate need not be the successor. (Mutant
    /// `succession.rs:293:13` `&&` → `||` in `vote_grants_starting`, schemata form
    /// `((group && voting) || starting) && …`: any backup holding more was granted, the
    /// heavier member passed over; textual form: anything granted. Schemata run of
    /// 64df4f8, 2026-11-27.)
    #[test]
    fn backup_voting_lighter_backup_with_more_frames_refused_beside_a_heavier_as_far() {
        let mut p = group(&[(3, 1, false), (4, 10, false)], 5);
        let followed = p.node(1).epoch();
        p.crash(0);
        let far = p.node(1).frame() + 5;
        let until = p.now + Duration::from_millis(30);
        while p.now < until {
            let bytes = from_at(&p, 4, WireRole::Backup, WireSync::InSync, followed, far, heartbeat(&p));
            p.inject(1, 2, &bytes);
            p.run_for(Duration::from_millis(1));
        }
        assert!(p.node(1).frames_held_to() < far);
        assert_eq!(p.node(1).successor(), Some(4));
        let asked = Epoch(followed).next(3).unwrap().0;
        let request = Body::VoteRequest {
            epoch: asked,
            commit_highest: far,
        };
        let bytes = from(&p, 3, WireRole::Backup, WireSync::InSync, followed, request);
        p.inject(1, 1, &bytes);
        assert_eq!(votes(&p, 1), [(asked, false)]);
    }

    /// The successor is the live backup with state ranked by (in sync, weight, lowest
    /// id), this node included; never a witness, never a lagging one while an in-sync
    /// one is alive, never one gone silent.
    #[test]
    fn backup_group_successor_by_sync_weight_then_id() {
        let mut p = group(&[(3, 5, false), (4, 0, true)], 5);
        let followed = p.node(1).epoch();
        let hear = |p: &mut Pair, id: u8, link: u8, sync: WireSync| {
            let bytes = from(p, id, WireRole::Backup, sync, followed, heartbeat(p));
            p.inject(1, link, &bytes);
        };
        // Node 3: same weight, higher id than node 2; node 4 a witness.
        hear(&mut p, 3, 1, WireSync::InSync);
        hear(&mut p, 4, 2, WireSync::InSync);
        assert_eq!(p.node(1).successor(), Some(2));
        p.nodes[1].as_mut().unwrap().config.peers[1].weight = 6;
        assert_eq!(p.node(1).successor(), Some(3), "heavier");
        hear(&mut p, 3, 1, WireSync::Lagging);
        assert_eq!(p.node(1).successor(), Some(2), "in sync first");
        hear(&mut p, 3, 1, WireSync::InSync);
        p.nodes[1].as_mut().unwrap().sync = SyncState::Lagging;
        assert_eq!(p.node(1).successor(), Some(3));
        // Node 3 silent past a backup's window (`backup_silence`): not alive, not chosen.
        p.run_for(Duration::from_millis(10));
        assert_eq!(p.node(1).successor(), Some(3), "a quiet backup heartbeats less often");
        p.run_for(Duration::from_millis(30));
        assert_eq!(p.node(1).successor(), Some(2));
    }

    /// A group's backup that hears the successor it voted for lead, of its own cold start,
    /// follows it without a transfer (the old code rejoined); a commit of a frame it ran
    /// on other input makes it rejoin.
    ///
    /// Node 2 runs frames on its primary's commits before the crash: `group` returns as
    /// soon as it is in sync, its last frame the transfer's, of which it holds no commit
    /// (ignored from the merge 4ea8507 on: the pair syncs that fast since; the test's
    /// setup now runs the group 20 ms first).
    #[test]
    fn backup_voted_successor_leads_followed_without_transfer_then_differing_commit_rejoins() {
        let mut p = group(&[(3, 10, false)], 5);
        p.run_for(Duration::from_millis(20));
        let followed = p.node(1).epoch();
        p.crash(0);
        run_with_backup(&mut p, 3, 1, Duration::from_millis(30));
        let epoch = Epoch(followed).next(3).unwrap().0;
        let request = Body::VoteRequest {
            epoch,
            commit_highest: complete(&p),
        };
        let bytes = from(&p, 3, WireRole::Backup, WireSync::InSync, followed, request);
        p.inject(1, 1, &bytes);
        assert_eq!(votes(&p, 1).last(), Some(&(epoch, true)));
        let frame = p.node(1).frame();
        assert!(frame > 1);
        let held = p.node(1).ring.commit(frame).expect("the commit of its last frame");
        let commit = |kind| {
            Body::Commit(Commit {
                frame,
                kind,
                state_digest: None,
                writes: Default::default(),
            })
        };
        let same = from(
            &p,
            3,
            WireRole::Primary,
            WireSync::NotApplicable,
            epoch,
            commit(held.kind),
        );
        p.inject(1, 1, &same);
        assert_eq!(p.node(1).epoch(), epoch, "follows the new primary");
        assert_eq!(p.node(1).status().sync, SyncState::InSync, "without a transfer");
        let other = CommitKind::Skipped { last: frame };
        let differs = from(&p, 3, WireRole::Primary, WireSync::NotApplicable, epoch, commit(other));
        p.inject(1, 1, &differs);
        assert_eq!(p.node(1).status().sync, SyncState::Joining, "histories differ: rejoins");
    }

    /// A pair keeps its probe rule: two voters, no vote asked.
    #[test]
    fn backup_primary_lost_pair_takes_over_after_probe() {
        let config = Config {
            links: 1,
            ..Config::fast()
        };
        let mut p = Pair::new(16, config, 0);
        p.capture = true;
        p.start(0);
        let until = p.now + Duration::from_millis(2000);
        assert!(p.run_until(until, |p| p.node(0).role() == Role::Primary));
        p.start(1);
        let until = p.now + Duration::from_millis(2000);
        assert!(p.run_until(until, |p| p.node(1).status().sync == SyncState::InSync));
        assert!(!p.node(1).group_votes());
        p.crash(0);
        p.run_for(Duration::from_millis(20));
        assert_eq!(p.node(1).role(), Role::Primary);
        assert!(vote_requests(&p, 0).is_empty());
    }

    // ---- a lone node of a group, the others spoken for by the test --------------------

    use crate::node::{Boot, Node};
    use crate::testing::TestApp;

    /// Node `id` of a group with `peers` (id, weight, witness), one link each (slot i on
    /// link i); `witness`: this node is the group's witness.
    /// A group primary (node 1 of a witness group) that ran frame 1, then stalled 10
    /// detection windows: the witness's backlog heard, then frame 2 handed in (not yet
    /// drained). Returns the node, the instant, and the frame it had run.
    fn group_primary_stalled() -> (Node<TestApp>, Instant, u64) {
        let mut node = lone(1, false, &[(2, 1, false), (3, 0, true)]);
        let until = node.now + Duration::from_millis(100);
        run_lone(&mut node, until, hear_starting_witness);
        assert_eq!(node.role(), Role::Primary);
        let mut now = node.now + Duration::from_millis(1);
        hear_starting_witness(&mut node, now);
        node.handle_frame(now, 1, &TestApp::payload_for(1));
        drained(&mut node);
        let ran = node.frame();
        now = now + node.config.detection_window() * 10;
        hear_starting_witness(&mut node, now);
        node.handle_frame(now, 2, &TestApp::payload_for(2));
        (node, now, ran)
    }

    fn lone(id: u8, witness: bool, peers: &[(u8, u8, bool)]) -> Node<TestApp> {
        lone_with(TestApp::new(0), id, witness, peers)
    }

    /// As [`lone`], running `app`.
    fn lone_with<A: App>(app: A, id: u8, witness: bool, peers: &[(u8, u8, bool)]) -> Node<A> {
        let config = Config {
            node_id: id,
            witness,
            peers: peers
                .iter()
                .map(|&(id, weight, witness)| GroupPeer {
                    id,
                    weight,
                    witness,
                    links: 1,
                })
                .collect(),
            ..Config::fast()
        };
        let boot = Boot {
            now: Instant::from_millis(1),
            seed: u64::from(id),
            epoch_persisted: 0,
            epoch_reserved: 0,
        };
        Node::new(config, app, boot).expect("a valid group")
    }

    /// A message to `node` from member `id` in `role`/`sync`, at `epoch` with `origin`.
    fn to<A: App>(
        node: &Node<A>,
        id: u8,
        role: WireRole,
        sync: WireSync,
        epoch: u64,
        origin: u64,
        mut body: Body,
    ) -> wire::WireBuf {
        // A heartbeat carries what member `id` announces on its link to `node`: the
        // witness's fingerprint where either end is the witness (`pairing::fingerprint_for`).
        if let (Body::Heartbeat { fingerprint, .. }, Some(slot)) =
            (&mut body, node.config.peers.iter().position(|m| m.id == id))
        {
            *fingerprint = node.fingerprint_for(slot);
        }
        let header = Header {
            session: 0,
            seq: 0,
            node_id: id,
            role,
            epoch,
            sync,
            frame: 0,
            origin,
        };
        wire::encode(&Envelope { header, body }, None).unwrap()
    }

    fn lone_heartbeat<A: App>(node: &Node<A>) -> Body {
        Body::Heartbeat {
            nonce: 5,
            priority: 0,
            sent_ns: 1,
            echo_ns: 0,
            echo_hold_ns: 0,
            input_frame: 0,
            input_age_ms: u64::MAX,
            fingerprint: node.fingerprint,
            challenge: 0,
            challenge_echo: 0,
        }
    }

    /// Node 3, a starting witness of the group, heard by `node` on link 1.
    /// A heartbeat of member `id`, starting, announcing `epoch`.
    fn starting_heartbeat(node: &Node<TestApp>, id: u8, epoch: u64) -> wire::WireBuf {
        to(
            node,
            id,
            WireRole::Starting,
            WireSync::NotApplicable,
            epoch,
            0,
            lone_heartbeat(node),
        )
    }

    fn hear_starting_witness(node: &mut Node<TestApp>, now: Instant) {
        let bytes = starting_heartbeat(node, 3, 0);
        node.handle_message(now, 1, &bytes);
    }

    fn drained<A: App>(node: &mut Node<A>) -> std::vec::Vec<Action> {
        core::iter::from_fn(|| node.poll_action()).collect()
    }

    /// Every wake-up due by `until`, a millisecond apart at most, `hear` before each; the
    /// members `node` hears grant its start-up rounds (`grant_startup_round`).
    fn run_lone<A: App>(
        node: &mut Node<A>,
        until: Instant,
        hear: impl FnMut(&mut Node<A>, Instant),
    ) -> std::vec::Vec<Action> {
        run_steps(node, until, hear, true)
    }

    /// As [`run_lone`]; `grant`: the members heard grant its start-up rounds.
    fn run_steps<A: App>(
        node: &mut Node<A>,
        until: Instant,
        mut hear: impl FnMut(&mut Node<A>, Instant),
        grant: bool,
    ) -> std::vec::Vec<Action> {
        let mut actions = std::vec::Vec::new();
        let mut now = node.now;
        while now < until {
            now = node
                .poll_timeout()
                .unwrap_or(until)
                .min(now + Duration::from_millis(1))
                .max(now);
            hear(node, now);
            node.handle_timeout(now);
            actions.extend(drained(node));
            if grant {
                grant_startup_round(node, now);
                actions.extend(drained(node));
            }
            now = now + Duration::from_micros(1);
        }
        actions
    }

    /// Every member `node` hears grants its start-up round (`startup_vote_start`), if it
    /// asks one, speaking as it last said it was: a starting node leads from the start-up
    /// role with the grants of the majority it hears.
    fn grant_startup_round<A: App>(node: &mut Node<A>, now: Instant) {
        let Some(VoteRound {
            epoch: Some(epoch),
            startup: Some(_),
            ..
        }) = node.vote
        else {
            return;
        };
        for slot in 0..usize::from(node.peer_count) {
            let Some(status) = node.peers[slot].status.filter(|_| node.slot_alive(slot)) else {
                continue;
            };
            let vote = Body::Vote {
                epoch: epoch.0,
                granted: true,
                commit_highest: 0,
                bar: epoch.0,
            };
            let bytes = to(
                node,
                status.node_id,
                status.role,
                status.sync,
                status.epoch,
                status.origin,
                vote,
            );
            // One link a member, in slot order (`lone`).
            node.handle_message(now, slot as u8, &bytes);
            if node.vote.is_none() {
                return;
            }
        }
    }

    /// A starting node of a group weighs every live peer, not slot 0 only: a backup with
    /// state heard on slot 1 (slot 0 silent) makes it wait for the takeover, as a pair's
    /// does. (The old code looked at slot 0 alone and led a cold start.)
    #[test]
    fn starting_group_backup_with_state_on_another_slot_waits() {
        let mut node = lone(1, false, &[(2, 1, false), (3, 1, false), (4, 0, true)]);
        let until = node.now + Duration::from_millis(100);
        run_lone(&mut node, until, |node, now| {
            let bytes = to(
                node,
                3,
                WireRole::Backup,
                WireSync::InSync,
                0x102,
                0x102,
                lone_heartbeat(node),
            );
            node.handle_message(now, 1, &bytes);
        });
        assert_eq!(node.role(), Role::Starting);
    }

    /// Alone in its group at start (nobody heard), a node does not lead — a pair's
    /// would — it waits for a majority; one starting peer more (the witness) makes one.
    #[test]
    fn starting_group_leads_with_a_majority_heard_only() {
        let mut node = lone(1, false, &[(2, 1, false), (3, 0, true)]);
        let until = node.now + Duration::from_millis(100);
        run_lone(&mut node, until, |_, _| {});
        assert_eq!(node.role(), Role::Starting);
        let until = node.now + Duration::from_millis(100);
        run_lone(&mut node, until, |node, now| {
            let bytes = starting_heartbeat(node, 3, 0);
            node.handle_message(now, 1, &bytes);
        });
        assert_eq!(node.role(), Role::Primary);
    }

    /// A witness never leads, however long it hears nobody, nor at an operator's word;
    /// it follows a primary's epoch without asking for its state. (The old code had no
    /// witness: it led.)
    #[test]
    fn starting_witness_never_leads_follows_without_join() {
        let mut node = lone(3, true, &[(1, 1, false), (2, 1, false)]);
        let until = node.now + Duration::from_millis(200);
        run_lone(&mut node, until, |_, _| {});
        assert_eq!(node.role(), Role::Starting);
        let now = node.now;
        assert_eq!(
            node.handle_command(now, crate::node::Command::ForcePrimary),
            crate::node::CommandReply::Refused(crate::node::RefuseReason::NotWaiting)
        );
        assert_eq!(node.role(), Role::Starting);
        let bytes = to(
            &node,
            1,
            WireRole::Primary,
            WireSync::NotApplicable,
            0x101,
            0x101,
            lone_heartbeat(&node),
        );
        node.handle_message(now, 0, &bytes);
        assert_eq!((node.role(), node.epoch()), (Role::Backup, 0x101));
        let until = now + Duration::from_millis(50);
        let actions = run_lone(&mut node, until, |node, now| {
            let bytes = to(
                node,
                1,
                WireRole::Primary,
                WireSync::NotApplicable,
                0x101,
                0x101,
                lone_heartbeat(node),
            );
            node.handle_message(now, 0, &bytes);
        });
        let joins = actions.iter().filter(|a| match a {
            Action::Transmit { bytes, .. } => {
                matches!(wire::decode(bytes, None).map(|e| e.body), Ok(Body::JoinRequest { .. }))
            }
            _ => false,
        });
        assert_eq!(joins.count(), 0);
        assert_eq!(node.status().sync, SyncState::Alone);
    }

    /// A starting witness that has heard no primary since it started knows nothing of how
    /// far the group ran: it grants nothing, however long it waited. (The old code granted:
    /// a witness restarted next to a stale backup elected it, DST `--nodes 2 --witness`.)
    #[test]
    fn starting_witness_vote_request_heard_no_primary_refused() {
        let mut node = lone(3, true, &[(1, 1, false), (2, 5, false)]);
        let until = node.now + Duration::from_millis(20);
        run_lone(&mut node, until, |_, _| {});
        let now = node.now;
        let request = Body::VoteRequest {
            epoch: 0x202,
            commit_highest: 9,
        };
        let bytes = to(&node, 2, WireRole::Backup, WireSync::InSync, 0x101, 0x101, request);
        node.handle_message(now, 1, &bytes);
        let actions = drained(&mut node);
        assert!(!actions.contains(&Action::ReserveEpoch(0x202)), "{actions:?}");
        assert_eq!(answers(&actions, 1), [(0x202, false)]);
        assert_eq!(node.role(), Role::Starting);
    }

    /// A starting voter that knows how far the group ran refuses a start-up candidate —
    /// complete, its own window without a primary passed — while a member holding the
    /// group's state is alive (a backup in sync): that one takes over, and a lead from
    /// the start-up role beside it would be a second history. (Mutants
    /// `succession.rs:358:13` and `359:13`, `&&` → `||` in `vote_grants_startup`: the
    /// grant went on the window alone, or on the holder check alone. Schemata run of
    /// 64df4f8, 2026-11-27.)
    #[test]
    fn starting_voter_holder_alive_start_up_request_refused() {
        let mut node = lone(1, false, &[(2, 1, false), (3, 1, false)]);
        node.frame_last_run = 40;
        let now = node.now + Duration::from_millis(1000);
        let holder = to(
            &node,
            3,
            WireRole::Backup,
            WireSync::InSync,
            0x101,
            0x101,
            lone_heartbeat(&node),
        );
        node.handle_message(now, 1, &holder);
        drained(&mut node);
        let request = Body::VoteRequest {
            epoch: 0x202,
            commit_highest: 40,
        };
        let bytes = to(
            &node,
            2,
            WireRole::Starting,
            WireSync::NotApplicable,
            0x101,
            0x101,
            request,
        );
        node.handle_message(now, 0, &bytes);
        let actions = drained(&mut node);
        assert_eq!(answers(&actions, 0), [(0x202, false)]);
        assert!(!actions.contains(&Action::ReserveEpoch(0x202)), "{actions:?}");
    }

    /// (epoch, granted) of every `Vote` in `actions` on `link`.
    fn answers(actions: &[Action], link: u8) -> std::vec::Vec<(u64, bool)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Transmit { bytes, link: l, .. } if *l == link => {
                    match wire::decode(bytes, None).map(|e| e.body) {
                        Ok(Body::Vote { epoch, granted, .. }) => Some((epoch, granted)),
                        _ => None,
                    }
                }
                _ => None,
            })
            .collect()
    }

    /// A witness that heard its primary run frame 40 refuses a candidate whose commits end
    /// below it (the primary's outputs of frame 40 may be out) and grants one that holds
    /// frame 40, the vote stored before it leaves. (The old code granted both.)
    #[test]
    fn backup_witness_vote_request_behind_primary_frame_refused() {
        let mut node = lone(3, true, &[(1, 1, false), (2, 5, false)]);
        let now = node.now;
        let mut bytes = to(
            &node,
            1,
            WireRole::Primary,
            WireSync::NotApplicable,
            0x101,
            0x101,
            lone_heartbeat(&node),
        );
        let mut envelope = wire::decode(&bytes, None).unwrap();
        envelope.header.frame = 40;
        bytes = wire::encode(&envelope, None).unwrap();
        node.handle_message(now, 0, &bytes);
        assert_eq!(node.role(), Role::Backup);
        // The primary silent past the witness's window.
        let until = node.now + Duration::from_millis(20);
        run_lone(&mut node, until, |_, _| {});
        let ask = |node: &mut Node<TestApp>, epoch: u64, commit_highest: u64| {
            let now = node.now;
            let request = Body::VoteRequest { epoch, commit_highest };
            let bytes = to(node, 2, WireRole::Backup, WireSync::InSync, 0x101, 0x101, request);
            node.handle_message(now, 1, &bytes);
            drained(node)
        };
        let behind = ask(&mut node, 0x202, 39);
        assert_eq!(answers(&behind, 1), [(0x202, false)]);
        assert!(!behind.contains(&Action::ReserveEpoch(0x202)), "{behind:?}");
        let complete = ask(&mut node, 0x202, 40);
        assert_eq!(answers(&complete, 1), [(0x202, true)]);
        let reserve = complete.iter().position(|a| *a == Action::ReserveEpoch(0x202));
        let grant = complete
            .iter()
            .position(|a| matches!(a, Action::Transmit { link: 1, .. }));
        assert!(reserve.is_some() && reserve < grant, "{complete:?}");
    }

    /// A backup refuses a candidate whose commits end below its own, whatever its rank,
    /// and grants the same epoch once the candidate holds them. (The old code granted.)
    #[test]
    fn backup_vote_request_behind_its_commits_refused() {
        let mut p = group(&[(3, 10, false)], 5);
        let followed = p.node(1).epoch();
        p.crash(0);
        run_with_backup(&mut p, 3, 1, Duration::from_millis(30));
        let known = complete(&p);
        assert!(known > 1, "node 2 ran frames: {known}");
        let epoch = Epoch(followed).next(3).unwrap().0;
        for commit_highest in [known - 1, known] {
            let request = Body::VoteRequest { epoch, commit_highest };
            let bytes = from(&p, 3, WireRole::Backup, WireSync::InSync, followed, request);
            p.inject(1, 1, &bytes);
        }
        assert_eq!(votes(&p, 1), [(epoch, false), (epoch, true)]);
    }

    /// Weight yields to frames: a heavier backup in sync whose messages say it ran fewer
    /// frames than node 2 can decide (its primary silent, a backup runs every frame it
    /// can) is passed over, and node 2 stands itself. (The old code waited for the
    /// heavier one, which the holder of more refuses: the group had no primary.)
    #[test]
    fn backup_group_heavier_member_behind_passed_over_stands_itself() {
        let mut p = group(&[(3, 10, false)], 5);
        let followed = p.node(1).epoch();
        p.crash(0);
        let behind = |p: &mut Pair, duration: Duration| {
            let until = p.now + duration;
            while p.now < until {
                let frame = p.node(1).frame() - 1;
                let bytes = from_at(p, 3, WireRole::Backup, WireSync::InSync, followed, frame, heartbeat(p));
                p.inject(1, 1, &bytes);
                p.run_for(Duration::from_millis(1));
            }
        };
        behind(&mut p, Duration::from_millis(40));
        let asked = vote_requests(&p, 1);
        assert!(
            !asked.is_empty(),
            "node 2 holds more than the heavier node 3: it stands"
        );
        // Node 3 level with node 2: the heavier one is the successor again.
        assert_eq!(p.node(1).successor(), Some(2));
        let bytes = from(&p, 3, WireRole::Backup, WireSync::InSync, followed, heartbeat(&p));
        p.inject(1, 1, &bytes);
        assert_eq!(p.node(1).successor(), Some(3));
    }

    /// A backup that cannot decide every frame it knows the group ran (commits without
    /// their input) is not the successor in its own view: it grants a lighter member
    /// that asks holding them all, instead of refusing it as the heavier one that never
    /// stands. (The old code refused: DST `--nodes 3 --liveness --seed 328`.)
    #[test]
    fn backup_group_short_of_its_commits_grants_the_complete_lighter_one() {
        let mut p = group(&[(3, 1, false)], 5);
        let followed = p.node(1).epoch();
        p.crash(0);
        let node = p.nodes[1].as_mut().unwrap();
        node.commit_highest = node.frame_last_run + 5;
        run_with_backup(&mut p, 3, 1, Duration::from_millis(40));
        assert!(
            vote_requests(&p, 1).is_empty(),
            "short of its commits: it does not stand"
        );
        let known = complete(&p);
        let epoch = Epoch(followed).next(3).unwrap().0;
        let request = Body::VoteRequest {
            epoch,
            commit_highest: known,
        };
        let bytes = from(&p, 3, WireRole::Backup, WireSync::InSync, followed, request);
        p.inject(1, 1, &bytes);
        assert_eq!(votes(&p, 1), [(epoch, true)]);
    }

    /// A backup that holds commits without their input (it cannot run those frames as
    /// they were decided) does not stand for votes, even as the successor. (The old code
    /// asked with its commits: DST `--nodes 2 --witness --seed 109`.)
    #[test]
    fn backup_commits_without_input_asks_no_votes() {
        let mut p = group(&[(3, 1, false)], 5);
        p.crash(0);
        let node = p.nodes[1].as_mut().unwrap();
        node.commit_highest = node.frame_last_run + 5;
        run_with_backup(&mut p, 3, 1, Duration::from_millis(40));
        assert!(vote_requests(&p, 1).is_empty(), "{:?}", vote_requests(&p, 1));
        assert_eq!(p.node(1).role(), Role::Backup);
    }

    /// A starting witness announces the highest epoch it saw, not the floor its votes
    /// raised: it never led them, and a candidate that heard its own granted epoch
    /// announced gave up the grant (its next candidate epoch above it) while its peers
    /// rejected their live primary as stale (DST `--nodes 2 --witness --seed 70`). (The
    /// old code announced the floor.)
    #[test]
    fn starting_witness_voted_heartbeat_announces_no_vote() {
        let config = Config {
            node_id: 3,
            witness: true,
            peers: [(1, 1), (2, 1)]
                .iter()
                .map(|&(id, weight)| GroupPeer {
                    id,
                    weight,
                    witness: false,
                    links: 1,
                })
                .collect(),
            ..Config::fast()
        };
        let boot = Boot {
            now: Instant::from_millis(1),
            seed: 3,
            epoch_persisted: 0x101,
            epoch_reserved: 0x502,
        };
        let mut node = Node::new(config, TestApp::new(0), boot).expect("a valid group");
        let until = node.now + Duration::from_millis(5);
        let actions = run_lone(&mut node, until, |_, _| {});
        let epochs: std::vec::Vec<u64> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Transmit { bytes, .. } => wire::decode(bytes, None).ok().map(|e| e.header.epoch),
                _ => None,
            })
            .collect();
        assert!(!epochs.is_empty());
        assert!(epochs.iter().all(|&e| e == 0x101), "{epochs:x?}");
    }

    /// A group's primary that no longer hears a majority of its voters holds its frames —
    /// runs, commits and emits nothing — and runs them when one is heard again. (The old
    /// code ran on in a minority, its outputs beside the successor's: DST `--nodes 2
    /// --witness --seed 121`.)
    #[test]
    fn primary_group_majority_lost_holds_frames() {
        let mut node = lone(1, false, &[(2, 1, false), (3, 0, true)]);
        let until = node.now + Duration::from_millis(100);
        run_lone(&mut node, until, hear_starting_witness);
        assert_eq!(node.role(), Role::Primary);
        let mut now = node.now;
        for frame in 1..=3 {
            now = now + Duration::from_millis(1);
            hear_starting_witness(&mut node, now);
            node.handle_frame(now, frame, &TestApp::payload_for(frame));
        }
        drained(&mut node);
        let ran = node.frame();
        assert!(ran >= 2, "runs with the witness heard: {ran}");
        // Nobody heard past a primary's window for its peers.
        let until = now + node.config.backup_silence() + Duration::from_millis(1);
        run_lone(&mut node, until, |_, _| {});
        let mut now = node.now;
        for frame in 4..=6 {
            now = now + Duration::from_millis(1);
            node.handle_frame(now, frame, &TestApp::payload_for(frame));
        }
        let held = drained(&mut node);
        assert_eq!(node.frame(), ran, "held");
        assert!(!held.iter().any(|a| matches!(a, Action::Emit(_))), "{held:?}");
        assert_eq!(node.role(), Role::Primary);
        hear_starting_witness(&mut node, now);
        assert_eq!(node.frame(), 6, "the held frames run with a majority heard again");
    }

    /// A group's starting node whose state was made under an epoch below one it has
    /// heard announced waits, with a majority heard and its tiebreak won; with the
    /// announced epoch its own, it leads. (The old code led with the stale state: DST
    /// `--nodes 3 --seed 77`.)
    #[test]
    fn starting_group_state_below_epoch_seen_waits() {
        for (announced, leads) in [(0x302, false), (0x101, true)] {
            let mut node = lone(1, false, &[(2, 1, false), (3, 1, false)]);
            node.origin = Epoch(0x101);
            node.state_epoch = Epoch(0x101);
            let until = node.now + Duration::from_millis(100);
            run_lone(&mut node, until, |node, now| {
                let bytes = starting_heartbeat(node, 2, announced);
                node.handle_message(now, 0, &bytes);
            });
            let role = if leads { Role::Primary } else { Role::Starting };
            assert_eq!(node.role(), role, "announced {announced:#x}");
        }
    }

    /// A group's starting node that gave its origin up but ran frames of an epoch below
    /// one it has seen waits, though both peers are heard cold for the start-up wait.
    /// (The old code led a cold start on its old frames: DST `--nodes 2 --witness --seed
    /// 1220`.)
    #[test]
    fn starting_group_ran_frames_below_epoch_seen_waits_with_peers_cold() {
        let mut node = lone(1, false, &[(2, 1, false), (3, 1, false)]);
        node.frame_last_run = 10;
        node.state_epoch = Epoch(0x101);
        let until = node.now + Duration::from_millis(200);
        run_lone(&mut node, until, |node, now| {
            for (id, link) in [(2, 0), (3, 1)] {
                let bytes = starting_heartbeat(node, id, 0x302);
                node.handle_message(now, link, &bytes);
            }
        });
        assert_eq!(node.role(), Role::Starting);
    }

    /// A group's primary that ran nothing for a detection window holds its frames for
    /// its peers' window, though its socket's backlog makes a majority look heard; fresh
    /// messages after that let it run them. (The old code ran at once: DST `--nodes 4
    /// --seed 1886`.)
    #[test]
    fn primary_group_stalled_backlog_heard_holds_frames() {
        let (mut node, now, ran) = group_primary_stalled();
        let held = drained(&mut node);
        assert_eq!(node.frame(), ran, "held after the stall");
        assert!(!held.iter().any(|a| matches!(a, Action::Emit(_))), "{held:?}");
        // Fresh messages past the hold: it runs.
        let until = now + node.config.backup_silence() + Duration::from_millis(1);
        run_lone(&mut node, until, hear_starting_witness);
        assert_eq!(node.role(), Role::Primary);
        assert!(node.frame() > ran, "runs again");
    }

    /// A group's primary that hears a starting member announce an epoch above its own
    /// (one the group may have led while it was cut off) is demoted, not raised above it.
    /// (The old code led on above it with its stale state: DST `--nodes 3 --seed 1172`.)
    #[test]
    fn primary_group_starting_peer_announces_higher_epoch_demoted() {
        let mut node = lone(1, false, &[(2, 1, false), (3, 0, true)]);
        let until = node.now + Duration::from_millis(100);
        run_lone(&mut node, until, |node, now| {
            let bytes = starting_heartbeat(node, 3, 0);
            node.handle_message(now, 1, &bytes);
        });
        assert_eq!(node.role(), Role::Primary);
        let now = node.now;
        let bytes = starting_heartbeat(&node, 2, 0x302);
        node.handle_message(now, 0, &bytes);
        assert_eq!(node.role(), Role::Backup);
        assert_eq!(node.epoch(), 0x302);
    }

    /// A group's starting node that ran frames votes: it grants a candidate as complete
    /// as it knows the group to be, refuses one behind. (The old code refused every
    /// request while starting.)
    #[test]
    fn starting_group_ran_frames_votes_for_complete_candidate() {
        let mut node = lone(1, false, &[(2, 1, false), (3, 1, false)]);
        node.commit_highest = 40;
        let until = node.now + Duration::from_millis(10);
        run_lone(&mut node, until, |_, _| {});
        assert_eq!(node.role(), Role::Starting);
        let ask = |node: &mut Node<TestApp>, epoch: u64, commit_highest: u64| {
            let now = node.now;
            let request = Body::VoteRequest { epoch, commit_highest };
            let bytes = to(node, 2, WireRole::Backup, WireSync::InSync, 0x101, 0x101, request);
            node.handle_message(now, 0, &bytes);
            answers(&drained(node), 0)
        };
        assert_eq!(ask(&mut node, 0x202, 39), [(0x202, false)]);
        assert_eq!(ask(&mut node, 0x202, 40), [(0x202, true)]);
    }

    /// A group's primary is paired while any backup follows in sync, whichever its slot
    /// (the old code looked at slot 0: a witness there left it alone for good).
    #[test]
    fn primary_group_backup_in_sync_on_another_slot_paired() {
        let mut node = lone(1, false, &[(4, 0, true), (2, 1, false)]);
        let until = node.now + Duration::from_millis(100);
        run_lone(&mut node, until, |node, now| {
            // The witness makes a majority at start.
            let bytes = starting_heartbeat(node, 4, 0);
            node.handle_message(now, 0, &bytes);
        });
        assert_eq!((node.role(), node.status().sync), (Role::Primary, SyncState::Alone));
        let epoch = node.epoch();
        let until = node.now + Duration::from_millis(20);
        run_lone(&mut node, until, |node, now| {
            let bytes = to(
                node,
                2,
                WireRole::Backup,
                WireSync::InSync,
                epoch,
                epoch,
                lone_heartbeat(node),
            );
            node.handle_message(now, 1, &bytes);
        });
        assert_eq!(node.status().sync, SyncState::Paired);
        // Silent past its window: alone again.
        let until = node.now + Duration::from_millis(200);
        run_lone(&mut node, until, |_, _| {});
        assert_eq!(node.status().sync, SyncState::Alone);
    }

    /// A group's primary sends the state to the peer that asked, on its links, and a
    /// second joiner waits for the first. (The old code sent the chunks on slot 0's
    /// links.)
    #[test]
    fn primary_group_join_request_state_goes_to_the_asking_slot() {
        let mut node = lone(1, false, &[(2, 1, false), (3, 1, false)]);
        let until = node.now + Duration::from_millis(100);
        run_lone(&mut node, until, |node, now| {
            // Node 3 joining, without state: a majority at start.
            let bytes = to(node, 3, WireRole::Backup, WireSync::Joining, 0, 0, lone_heartbeat(node));
            node.handle_message(now, 1, &bytes);
        });
        assert_eq!(node.role(), Role::Primary);
        let epoch = node.epoch();
        let mut now = node.now;
        for frame in 1..=3 {
            now = now + Duration::from_millis(1);
            node.handle_frame(now, frame, &TestApp::payload_for(frame));
        }
        drained(&mut node);
        let joining = |node: &Node<TestApp>, id: u8, join: u32| {
            to(
                node,
                id,
                WireRole::Backup,
                WireSync::Joining,
                epoch,
                0,
                Body::JoinRequest { id: join },
            )
        };
        let bytes = joining(&node, 3, 11);
        node.handle_message(now, 1, &bytes);
        let bytes = joining(&node, 2, 13);
        node.handle_message(now, 0, &bytes);
        let chunks: std::vec::Vec<(u8, u32)> = drained(&mut node)
            .iter()
            .filter_map(|a| match a {
                Action::Transmit { bytes, link, .. } => match wire::decode(bytes, None).map(|e| e.body) {
                    Ok(Body::Chunk { id, .. }) => Some((*link, id)),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        assert!(!chunks.is_empty());
        assert!(chunks.iter().all(|&c| c == (1, 11)), "{chunks:?}");
    }

    /// A primary does not vote (a live primary answers: it lives). A backup that asks it
    /// for an epoch above every epoch it has seen, as complete as it, is refused, and the
    /// primary leads on in its epoch. (Mutant `succession.rs:261:13` `&&` → `||` in
    /// `vote_grants`: any epoch above every one seen was granted, whatever this node's role
    /// and whoever asked, so the primary granted its own successor: with one more grant
    /// the backup led beside it. Schemata run of 64df4f8, 2026-11-27.)
    #[test]
    fn primary_group_vote_request_above_every_epoch_seen_refused() {
        let mut node = group_primary_input_silent();
        let epoch = node.epoch();
        let asked = Epoch(epoch).next(2).unwrap().0;
        let request = Body::VoteRequest {
            epoch: asked,
            commit_highest: node.frame() + 1,
        };
        let bytes = to(
            &node,
            2,
            WireRole::Backup,
            WireSync::InSync,
            epoch,
            node.origin.0,
            request,
        );
        let now = node.now;
        node.handle_message(now, 0, &bytes);
        let actions = drained(&mut node);
        assert_eq!(answers(&actions, 0), [(asked, false)]);
        assert_eq!((node.role(), node.epoch()), (Role::Primary, epoch));
    }

    /// A group's primary refuses a starting member's request too, though the member says
    /// it holds more frames than the primary ran: a primary does not vote. (Mutants
    /// `succession.rs:292:13` `&&` → `||` and `292:56` `==` → `!=` in
    /// `vote_grants_starting`: a primary granted it — the candidate, with one more
    /// grant, led beside it until the fence; `293:13` in its textual form
    /// `(group && voting) || …` likewise. Schemata run of 64df4f8, 2026-11-27.)
    #[test]
    fn primary_group_starting_member_holding_more_asks_refused() {
        let mut node = group_primary_input_silent();
        let epoch = node.epoch();
        let asked = Epoch(epoch).next(2).unwrap().0;
        let request = Body::VoteRequest {
            epoch: asked,
            commit_highest: node.frame() + 100,
        };
        let bytes = to(
            &node,
            2,
            WireRole::Starting,
            WireSync::NotApplicable,
            epoch,
            node.origin.0,
            request,
        );
        let granted = node.vote_granted;
        let now = node.now;
        node.handle_message(now, 0, &bytes);
        let actions = drained(&mut node);
        assert_eq!(answers(&actions, 0), [(asked, false)]);
        assert_eq!((node.role(), node.vote_granted), (Role::Primary, granted));
    }

    /// A program whose outbox is full every frame.
    #[derive(Debug)]
    struct FullOutbox;

    impl App for FullOutbox {
        fn step(&mut self, frame: crate::app::Frame<'_>, outbox: &mut crate::app::Outbox) {
            for index in 0..crate::app::OUTPUTS_PER_FRAME_MAX {
                let _ = outbox.push(&[index as u8, frame.number as u8]);
            }
        }

        fn snapshot(&self, _buf: &mut [u8]) -> Result<usize, crate::app::SnapshotError> {
            Ok(0)
        }

        fn restore(&mut self, _bytes: &[u8]) -> Result<(), crate::app::SnapshotError> {
            Ok(())
        }

        fn digest(&self) -> u64 {
            0
        }
    }

    /// One call queues at most `ACTIONS_MAX` actions (`Node::poll_action`), whatever the
    /// peers: a group's primary reserves a frame's room for each of them. Node 1, primary
    /// of four voters, its outbox full every frame, holds 60 frames while it hears no
    /// majority; the message that makes a majority again runs as many as keep the queue
    /// within the bound, and the rest run as the caller drains it. (Mutant `node/mod.rs:1426:31`
    /// `+` → `-` in `actions_per_frame`: a group of four reserved 8 actions a frame, fewer
    /// than a frame here queues, and that call queued more than `ACTIONS_MAX`. Schemata run
    /// of 64df4f8, 2026-11-27.)
    #[test]
    fn primary_group_of_four_backlog_runs_within_the_action_queue_bound() {
        let mut node = lone_with(FullOutbox, 1, false, &[(2, 1, false), (3, 1, false), (4, 0, true)]);
        // Backups 2 and 3 joining, heard on their links (slot order), one call each.
        let hear = |node: &mut Node<FullOutbox>, now: Instant, id: u8| {
            let body = lone_heartbeat(node);
            let bytes = to(node, id, WireRole::Backup, WireSync::Joining, 0, 0, body);
            node.handle_message(now, id - 2, &bytes);
            drained(node)
        };
        let until = node.now + Duration::from_millis(100);
        run_lone(&mut node, until, |node, now| {
            hear(node, now, 2);
            hear(node, now, 3);
        });
        assert_eq!(node.role(), Role::Primary);
        let now = node.now + Duration::from_millis(1);
        hear(&mut node, now, 2);
        hear(&mut node, now, 3);
        node.handle_frame(now, 1, &TestApp::payload_for(1));
        drained(&mut node);
        assert_eq!(node.frame(), 1);
        // Nobody heard past a primary's window for its peers.
        let until = now + node.config.backup_silence() + Duration::from_millis(1);
        run_lone(&mut node, until, |_, _| {});
        let mut now = node.now;
        let last = 61;
        for frame in 2..=last {
            now = now + Duration::from_micros(50);
            node.handle_frame(now, frame, &TestApp::payload_for(frame));
            drained(&mut node);
        }
        assert_eq!(node.frame(), 1, "held");
        hear(&mut node, now, 2);
        assert_eq!(node.frame(), 1, "one backup is no majority");
        let body = lone_heartbeat(&node);
        let bytes = to(&node, 3, WireRole::Backup, WireSync::Joining, 0, 0, body);
        node.handle_message(now, 1, &bytes);
        let (queued, ran) = (node.actions.len(), node.frame());
        assert!(ran > 1, "the held frames run with a majority heard again");
        assert!(
            queued <= crate::node::ACTIONS_MAX,
            "{queued} actions queued by one call, frames 2..={ran}"
        );
        assert!(ran < last, "all {last} frames in one call");
        // The rest as the caller drains the queue.
        drained(&mut node);
        assert_eq!(node.frame(), last);
    }

    /// Node 1, primary of a group of four (backups 2 of weight 1 and 3 of weight 3, a
    /// witness 4), its input silent: both backups heard in sync each `run_lone` step,
    /// their input alive and ahead; the hold after leading is off.
    fn group_primary_input_silent() -> Node<TestApp> {
        let mut node = lone(1, false, &[(2, 1, false), (3, 3, false), (4, 0, true)]);
        node.config.input_handover_hold_ms = 0;
        let until = node.now + Duration::from_millis(100);
        run_lone(&mut node, until, |node, now| {
            // Both backups joining, without state: a majority at start.
            for (id, link) in [(2, 0), (3, 1)] {
                let bytes = to(
                    node,
                    id,
                    WireRole::Backup,
                    WireSync::Joining,
                    0,
                    0,
                    lone_heartbeat(node),
                );
                node.handle_message(now, link, &bytes);
            }
        });
        assert_eq!(node.role(), Role::Primary);
        drained(&mut node);
        node
    }

    /// Backups 2 and 3 in sync at `node`'s epoch, their input alive at frame 50.
    fn hear_backups_in_sync<A: App>(node: &mut Node<A>, now: Instant) {
        hear_backups_as(node, now, [WireSync::InSync; 2]);
    }

    /// Backups 2 and 3 at `node`'s epoch, following as `sync` says (node 2's first),
    /// their input alive at frame 50.
    fn hear_backups_as<A: App>(node: &mut Node<A>, now: Instant, sync: [WireSync; 2]) {
        let epoch = node.epoch();
        for ((id, link), sync) in [(2, 0), (3, 1)].into_iter().zip(sync) {
            let mut body = lone_heartbeat(node);
            if let Body::Heartbeat {
                input_frame,
                input_age_ms,
                ..
            } = &mut body
            {
                (*input_frame, *input_age_ms) = (50, 0);
            }
            let bytes = to(node, id, WireRole::Backup, sync, epoch, epoch, body);
            node.handle_message(now, link, &bytes);
        }
    }

    /// The switchover requests in `actions`: (link, id, to).
    fn switch_requests(actions: &[Action]) -> std::vec::Vec<(u8, u32, u8)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Transmit { bytes, link, .. } => match wire::decode(bytes, None).map(|e| e.body) {
                    Ok(Body::SwitchRequest { id, to }) => Some((*link, id, to)),
                    _ => None,
                },
                _ => None,
            })
            .collect()
    }

    /// A group's primary whose input falls silent while two backups in sync run ahead
    /// hands over to one of them, named — the successor by weight (node 3) — and only
    /// that one's agreement releases it. (The old code asked "the backup", `to: 0`, which
    /// every backup of a group agreed to and took over at: two primaries, DST `--nodes 3
    /// --witness --seed 859`.)
    #[test]
    fn primary_group_input_silent_hands_over_to_one_named_backup() {
        let mut node = group_primary_input_silent();
        // Both heard in sync before the handover may start (else the first heard
        // would be the only candidate).
        node.config.input_handover_ms = 0;
        let until = node.now + Duration::from_millis(5);
        run_lone(&mut node, until, hear_backups_in_sync);
        node.config.input_handover_ms = 50;
        let until = node.now + Duration::from_millis(80);
        let actions = run_lone(&mut node, until, hear_backups_in_sync);
        let requests = switch_requests(&actions);
        assert!(!requests.is_empty(), "an input handover starts");
        assert!(requests.iter().all(|&(_, _, to)| to == 3), "{requests:?}");
        assert_eq!(node.status().input.handovers, 1);
        // Node 2, not named, agrees all the same: the primary does not release.
        let id = requests[0].1;
        let now = node.now;
        let epoch = node.epoch();
        let agree = |node: &Node<TestApp>, member: u8| {
            to(
                node,
                member,
                WireRole::Backup,
                WireSync::InSync,
                epoch,
                epoch,
                Body::SwitchAgree { id },
            )
        };
        let bytes = agree(&node, 2);
        node.handle_message(now, 0, &bytes);
        assert!(matches!(
            node.switchover,
            super::super::Switchover::Requesting { to: 3, .. }
        ));
        let bytes = agree(&node, 3);
        node.handle_message(now, 1, &bytes);
        assert!(matches!(
            node.switchover,
            super::super::Switchover::Released { to: 3, .. }
        ));
    }

    /// An operator's switchover without `--to` in a group goes to the successor by
    /// weight, named in the request. (The old code asked "the backup", `to: 0`.)
    #[test]
    fn primary_group_switchover_command_names_the_successor() {
        let mut node = group_primary_input_silent();
        node.config.input_handover_ms = 0;
        let until = node.now + Duration::from_millis(10);
        run_lone(&mut node, until, hear_backups_in_sync);
        drained(&mut node);
        let now = node.now;
        let reply = node.handle_command(now, crate::node::Command::Switchover);
        assert_eq!(reply, crate::node::CommandReply::Started);
        let requests = switch_requests(&drained(&mut node));
        assert_eq!(requests.iter().map(|r| r.0).collect::<std::vec::Vec<_>>(), [0, 1, 2]);
        assert!(requests.iter().all(|&(_, _, to)| to == 3), "{requests:?}");
    }

    /// A group's primary whose input falls silent while the heavier backup (node 3) lags
    /// and the lighter one (node 2) follows in sync, both with input running ahead, hands
    /// over to node 2: the successor is ranked among the backups in sync only.
    /// (Mutant `switchover.rs:551:57` `&&` → `||` in `switchover_successor`: every
    /// member but the witness was ranked, node 3 was chosen, the switchover to it refused
    /// as not in sync, and the primary ran on without input — no handover while node 3
    /// lagged. Schemata run of 64df4f8, 2026-11-27.)
    #[test]
    fn primary_group_input_silent_heavier_backup_lagging_hands_over_to_the_one_in_sync() {
        let mut node = group_primary_input_silent();
        let hear = |node: &mut Node<TestApp>, now| hear_backups_as(node, now, [WireSync::InSync, WireSync::Lagging]);
        node.config.input_handover_ms = 0;
        let until = node.now + Duration::from_millis(5);
        run_lone(&mut node, until, hear);
        node.config.input_handover_ms = 50;
        let until = node.now + Duration::from_millis(80);
        let requests = switch_requests(&run_lone(&mut node, until, hear));
        assert!(!requests.is_empty(), "no input handover");
        assert!(requests.iter().all(|&(_, _, to)| to == 2), "{requests:?}");
        assert_eq!(node.status().input.handovers, 1);
    }

    /// An operator's switchover without `--to` in a group with no backup in sync is
    /// refused, and the reason says why: `BackupJoining` while a live backup is joining,
    /// `NoHealthyBackup` when the live ones only lag. (Mutants `switchover.rs:563:17`,
    /// `565:45`, `565:65` and `565:75` in `switchover_no_target`: any live peer, any live
    /// backup, or a lagging one counted as joining, or a joining one not. The console's
    /// reason only. Schemata run of 64df4f8, 2026-11-27.)
    #[test]
    fn primary_group_switchover_no_backup_in_sync_refused_with_the_reason() {
        let cases = [
            (
                [WireSync::Lagging, WireSync::Joining],
                crate::node::RefuseReason::BackupJoining,
            ),
            (
                [WireSync::Lagging, WireSync::Lagging],
                crate::node::RefuseReason::NoHealthyBackup,
            ),
        ];
        for (sync, reason) in cases {
            let mut node = group_primary_input_silent();
            node.config.input_handover_ms = 0;
            let until = node.now + Duration::from_millis(10);
            run_lone(&mut node, until, |node, now| hear_backups_as(node, now, sync));
            let now = node.now;
            let reply = node.handle_command(now, crate::node::Command::Switchover);
            assert_eq!(reply, crate::node::CommandReply::Refused(reason), "backups {sync:?}");
        }
    }

    /// A group's backup takes no request that names no node: a group's primary names
    /// one, and every backup taking "the backup" would lead at once. (The old code
    /// agreed.)
    #[test]
    fn backup_group_switch_request_unnamed_ignored() {
        let mut p = group(&[(3, 1, false), (4, 0, true)], 1);
        let node = p.nodes[1].as_mut().unwrap();
        node.on_switch_request(7, 0);
        assert_eq!(node.switchover, super::super::Switchover::Idle);
        node.on_switch_request(7, 2);
        assert!(matches!(
            node.switchover,
            super::super::Switchover::Agreeing { id: 7, .. }
        ));
    }

    /// A voter that grants from its start-up (a primary demoted by a starting peer's
    /// epoch, its commits dropped with its join) announces the granted epoch as its
    /// floor: the candidate hears its own round's epoch back, and that makes no grant
    /// moot — with the grant it leads the epoch it asked. (The old code counted it as an
    /// epoch seen and asked again above it, for ever: DST `--nodes 3 --seed 0`.)
    #[test]
    fn backup_voting_starting_voter_announces_own_epoch_takes_over() {
        let (mut p, epoch) = candidate_asking();
        // Member 3, starting, its floor the granted epoch: its heartbeat, then its grant.
        let hello = from(&p, 3, WireRole::Starting, WireSync::NotApplicable, epoch, heartbeat(&p));
        p.inject(1, 1, &hello);
        let vote = Body::Vote {
            epoch,
            granted: true,
            commit_highest: 0,
            bar: epoch,
        };
        let grant = from(&p, 3, WireRole::Starting, WireSync::NotApplicable, epoch, vote);
        p.inject(1, 1, &grant);
        assert_eq!(p.node(1).role(), Role::Primary);
        assert_eq!(p.node(1).epoch(), epoch);
    }

    /// A starting node that ran frames itself (a group's primary, demoted) knows the
    /// group ran them: it grants a candidate as complete as that and refuses one behind
    /// it. (The old code counted only commits held and frames heard from a primary, both
    /// none after the demotion, and refused every candidate as knowing nothing: no
    /// majority for the in-sync backup, `chaos --nodes 3 --faults 200 --seed 1`.)
    #[test]
    fn starting_ran_frames_vote_complete_candidate_granted() {
        let mut node = lone(1, false, &[(2, 1, false), (3, 1, false)]);
        node.frame_last_run = 40;
        assert_eq!(node.role(), Role::Starting);
        assert_eq!((node.commit_highest, node.primary_frame_heard), (0, 0));
        assert!(node.vote_complete(40));
        assert!(!node.vote_complete(39));
    }

    /// A backup voting (its primary silent, itself the successor in its view) grants a
    /// starting candidate that holds more frames than it could decide itself — a demoted
    /// primary with the group's last frames — and refuses one that holds no more. (The
    /// old code answered a starting candidate with a refusal: the backup, incomplete,
    /// was refused by it in turn and the group waited for ever, DST `--nodes 3 --seed 2`.)
    #[test]
    fn backup_voting_starting_candidate_holding_more_granted() {
        let mut p = group(&[(3, 1, false)], 5);
        let followed = p.node(1).epoch();
        p.crash(0);
        run_with_backup(&mut p, 3, 1, Duration::from_millis(30));
        let held = p.node(1).frames_held_to();
        assert!(held > 1, "node 2 ran frames: {held}");
        let epoch = Epoch(followed).next(3).unwrap().0;
        for commit_highest in [held, held + 5] {
            let request = Body::VoteRequest { epoch, commit_highest };
            let bytes = from(&p, 3, WireRole::Starting, WireSync::NotApplicable, followed, request);
            p.inject(1, 1, &bytes);
        }
        assert_eq!(votes(&p, 1), [(epoch, false), (epoch, true)]);
    }

    /// A group's starting node with state made under an epoch below one announced since
    /// (a primary demoted by a restarted member's reservation) does not lead from the
    /// start-up role beside a backup with state; it asks for votes with the frames it
    /// ran, and leads the epoch asked with a majority. (The old code waited for ever:
    /// the backup lacked its last frames and it refused the backup, DST `--nodes 3
    /// --seed 2`, `chaos --nodes 3 --faults 200 --seed 1`.)
    #[test]
    fn starting_demoted_with_state_asks_votes_leads_with_majority() {
        let mut node = lone(1, false, &[(2, 1, false), (3, 1, false)]);
        node.origin = Epoch(0x101);
        node.state_epoch = Epoch(0x101);
        node.frame_last_run = 40;
        let until = node.now + Duration::from_millis(100);
        let actions = run_lone(&mut node, until, |node, now| {
            let backup = to(
                node,
                2,
                WireRole::Backup,
                WireSync::InSync,
                0x101,
                0x101,
                lone_heartbeat(node),
            );
            node.handle_message(now, 0, &backup);
            let cold = starting_heartbeat(node, 3, 0x203);
            node.handle_message(now, 1, &cold);
        });
        assert_eq!(node.role(), Role::Starting, "no lead from the start-up role");
        let asked: std::vec::Vec<(u64, u64)> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Transmit { link: 0, bytes, .. } => match wire::decode(bytes, None).map(|e| e.body) {
                    Ok(Body::VoteRequest { epoch, commit_highest }) => Some((epoch, commit_highest)),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        let &(epoch, commit_highest) = asked.last().expect("asked for votes");
        assert_eq!(commit_highest, 40);
        assert!(epoch > 0x203 && Epoch(epoch).node_id() == 1, "{epoch:#x}");
        let grant = Body::Vote {
            epoch,
            granted: true,
            commit_highest: 30,
            bar: epoch,
        };
        let bytes = to(&node, 2, WireRole::Backup, WireSync::InSync, 0x101, 0x101, grant);
        let now = node.now;
        node.handle_message(now, 0, &bytes);
        assert_eq!(node.role(), Role::Primary);
        assert_eq!(node.epoch(), epoch);
    }

    /// A group's starting voter that grants a backup's round announces no epoch it never
    /// led: neither the granted epoch nor a reservation of this run — only what it saw,
    /// and what its state file reserved before it started. (The old code announced its
    /// floor, the granted epoch: a second starting voter took it for an epoch seen and
    /// refused the same round again with it as its bar, and the candidate asked above it
    /// for ever, DST `--nodes 4 --seed 2721`; a backup cut off with such a member took
    /// its vote rounds for epochs led and rejected the group's live primary below them,
    /// `--nodes 4 --seed 3002`.)
    #[test]
    fn starting_voter_grants_announces_only_epochs_it_may_have_led() {
        let mut node = lone(1, false, &[(2, 1, false), (3, 1, false)]);
        node.frame_last_run = 40;
        let backup = |node: &Node<TestApp>, body| to(node, 2, WireRole::Backup, WireSync::InSync, 0x103, 0x103, body);
        let until = node.now + Duration::from_millis(100);
        run_lone(&mut node, until, |node, now| {
            let bytes = backup(node, lone_heartbeat(node));
            node.handle_message(now, 0, &bytes);
        });
        assert_eq!(node.role(), Role::Starting, "it waits for the backup with state");
        let asked = Epoch(0x103).next(2).unwrap().0;
        let request = backup(
            &node,
            Body::VoteRequest {
                epoch: asked,
                commit_highest: 40,
            },
        );
        let now = node.now;
        node.handle_message(now, 0, &request);
        let granted = drained(&mut node).iter().any(|a| match a {
            Action::Transmit { bytes, .. } => matches!(
                wire::decode(bytes, None).map(|e| e.body),
                Ok(Body::Vote { epoch, granted: true, .. }) if epoch == asked
            ),
            _ => false,
        });
        assert!(granted, "the round of {asked:#x} granted");
        assert_eq!(node.header(0).role, WireRole::Starting);
        assert_eq!(node.header(0).epoch, 0x103, "the epoch seen, not the vote");
        // A reservation of an earlier run may have been led: still announced.
        let boot = super::super::epochs::Epochs::new(0x103, 0x205);
        assert_eq!(boot.may_have_led(), Epoch(0x205));
    }

    /// A backup whose primary is lost, asking for votes, refused by two voters of four
    /// that hold commits far past its frames: no majority can grant it while it lacks
    /// them, so it gives up standing, leaves `InSync` and asks for a state transfer. One
    /// such refusal leaves it standing. (The old code asked every probe timeout to the
    /// end, reporting itself in sync at a frame the group ran past: DST `--nodes 4 --seed
    /// 3002`.)
    #[test]
    fn backup_voting_refused_by_voters_ahead_rejoins() {
        let mut p = group(&[(3, 1, false), (4, 1, false)], 5);
        p.crash(0);
        run_with_backup(&mut p, 3, 1, Duration::from_millis(20));
        let asked = *vote_requests(&p, 1).last().expect("asked");
        let held = p.node(1).frames_held_to();
        let followed = p.node(1).epoch();
        let refuse = |p: &mut Pair, id: u8, link: u8| {
            let refusal = Body::Vote {
                epoch: asked,
                granted: false,
                commit_highest: held + 900,
                bar: followed,
            };
            let bytes = from(p, id, WireRole::Backup, WireSync::InSync, followed, refusal);
            p.inject(1, link, &bytes);
        };
        refuse(&mut p, 3, 1);
        assert_eq!(p.node(1).status().sync, SyncState::InSync, "one voter ahead of four");
        refuse(&mut p, 4, 2);
        assert_eq!(
            (p.node(1).role(), p.node(1).status().sync),
            (Role::Backup, SyncState::Joining)
        );
        let reason = p.transitions.iter().rev().find(|(i, _)| *i == 1).map(|(_, t)| t.reason);
        assert_eq!(reason, Some(Reason::ResyncStarted(ResyncCause::Lag)));
        assert!(p.node(1).vote.is_none(), "it stands no more");
    }

    /// A group's starting node that hears a majority and wins its tiebreak asks for votes
    /// before it leads from the start-up role: a majority heard without grants does not
    /// lead, two grants of four voters do not, a third (with its own) does — as it would
    /// have, `WonTiebreak`. (The old code led on the majority heard: DST `--nodes 3
    /// --witness --seed 1902`, a partition moved and each side counted a peer of the
    /// other heard a moment before: two primaries at once.)
    #[test]
    fn starting_group_majority_heard_leads_only_with_a_majority_granted() {
        let mut node = lone(1, false, &[(2, 1, false), (3, 1, false), (4, 0, true)]);
        node.config.priority = 1;
        let hear = |node: &mut Node<TestApp>, now: Instant| {
            for (id, link) in [(2, 0), (4, 2)] {
                let bytes = starting_heartbeat(node, id, 0);
                node.handle_message(now, link, &bytes);
            }
        };
        let until = node.now + Duration::from_millis(100);
        let actions = run_steps(&mut node, until, hear, false);
        assert_eq!(node.role(), Role::Starting, "a majority heard, nothing granted");
        let asked: std::vec::Vec<(u8, u64)> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Transmit { link, bytes, .. } => match wire::decode(bytes, None).map(|e| e.body) {
                    Ok(Body::VoteRequest { epoch, .. }) => Some((*link, epoch)),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        let &(_, epoch) = asked.last().expect("it asks for votes");
        assert_eq!(Epoch(epoch).node_id(), 1);
        assert!(asked.iter().any(|&(link, _)| link == 1), "of every voter: {asked:?}");
        let grant = |node: &mut Node<TestApp>, id: u8, link: u8| {
            let vote = Body::Vote {
                epoch,
                granted: true,
                commit_highest: 0,
                bar: epoch,
            };
            let bytes = to(node, id, WireRole::Starting, WireSync::NotApplicable, 0, 0, vote);
            let now = node.now;
            node.handle_message(now, link, &bytes);
            drained(node)
        };
        grant(&mut node, 4, 2);
        assert_eq!(node.role(), Role::Starting, "two votes of four");
        let led = grant(&mut node, 2, 0);
        assert_eq!((node.role(), node.epoch()), (Role::Primary, epoch));
        assert!(
            led.iter()
                .any(|a| matches!(a, Action::Transition(t) if t.reason == Reason::WonTiebreak)),
            "{led:?}"
        );
    }

    /// A group's successor asking for votes because its primary fell silent, then hearing
    /// that primary again, had a busy primary, not a dead one: its round ends and the
    /// operator sees a false death, counted as a pair's answered probe is. (Mutant
    /// `detector.rs:59:35` `+=` → `*=`: the notice went out but the status counter stayed
    /// at 0. Schemata run of 64df4f8, 2026-11-27.)
    #[test]
    fn backup_voting_primary_heard_again_round_ends_false_death_counted() {
        let mut p = group(&[(3, 1, false)], 5);
        p.freeze(0, Duration::from_millis(12));
        let until = p.now + Duration::from_millis(10);
        while p.now < until && p.node(1).vote.is_none_or(|round| round.epoch.is_none()) {
            run_with_backup(&mut p, 3, 1, Duration::from_millis(1));
        }
        assert!(!vote_requests(&p, 1).is_empty(), "the successor asked for votes");
        assert_eq!(p.node(1).status().false_deaths, 0);
        run_with_backup(&mut p, 3, 1, Duration::from_millis(10));
        assert_eq!(p.node(1).role(), Role::Backup);
        assert_eq!(p.primary(), Some(0), "the primary was only busy");
        assert!(p.notices.contains(&(1, crate::node::Notice::FalseDeath)));
        assert_eq!(p.node(1).status().false_deaths, 1, "the false death counted");
    }

    /// A backup's grant of a candidate's epoch drops its own reservation below it: when
    /// it stands itself later (the candidate gone silent), it asks above the epoch it
    /// granted, never the older reservation. The candidate may have led with that grant,
    /// its outputs taken by the sink, and died before this node heard it lead; voters
    /// that never heard the granted epoch (in a group of three, the old primary back)
    /// would elect the reservation, and this node would lead below an epoch the sink
    /// took: a primary whose every output the sink rejects as stale.
    /// (Mutants `epochs.rs:197:44` `<` → `==` and `<` → `>`: the reservation was never
    /// dropped, and node 2 asked it again. Schemata run of 64df4f8, 2026-11-27.)
    #[test]
    fn backup_voted_above_its_reservation_stands_above_the_grant() {
        let mut p = group(&[(3, 10, false)], 5);
        let followed = p.node(1).epoch();
        p.crash(0);
        run_with_backup(&mut p, 3, 1, Duration::from_millis(30));
        let (reserved, durable) = p.node(1).epochs.lead_candidate(2).expect("a candidate");
        assert!(durable, "a backup with state holds a reservation");
        let granted = Epoch(followed).next(3).unwrap();
        assert!(reserved < granted, "{reserved:?} {granted:?}");
        let request = Body::VoteRequest {
            epoch: granted.0,
            commit_highest: complete(&p),
        };
        let bytes = from(&p, 3, WireRole::Backup, WireSync::InSync, followed, request);
        p.inject(1, 1, &bytes);
        assert_eq!(votes(&p, 1), [(granted.0, true)]);
        assert!(vote_requests(&p, 1).is_empty(), "node 3 was the successor");
        // Node 3 silent from now on: node 2 stands itself.
        p.run_for(Duration::from_millis(100));
        let asked = vote_requests(&p, 1);
        assert!(!asked.is_empty(), "node 2 stood once node 3 fell silent");
        assert!(
            asked.iter().all(|&epoch| epoch > granted.0),
            "asked {asked:x?}, below the epoch {:#x} it granted",
            granted.0
        );
    }

    /// A member whose primary died while it was joining is back in the start-up role
    /// (`PrimaryLostWhileJoining`) with the frames it ran before, but no state it could
    /// lead from: it is no successor in its own view, and grants a lagging member's round
    /// though it weighs more. Counted as the successor, it refused, round after round, the
    /// only member that held the group's state: the group, its primary dead, stayed
    /// without one. (Mutant `succession.rs:78:60` `&&` → `||`: every member but a witness
    /// counted itself, whatever its role. Schemata run of 64df4f8, 2026-11-27.)
    #[test]
    fn starting_primary_lost_while_joining_lagging_member_asks_granted() {
        let mut p = group(&[(3, 1, false)], 5);
        let followed = p.node(1).epoch();
        p.crash(0);
        let node = p.nodes[1].as_mut().unwrap();
        node.start_join(Some(ResyncCause::Lag));
        p.drain(1);
        assert_eq!(p.node(1).status().sync, SyncState::Joining);
        let until = p.now + Duration::from_millis(30);
        while p.now < until {
            let bytes = from(&p, 3, WireRole::Backup, WireSync::Lagging, followed, heartbeat(&p));
            p.inject(1, 1, &bytes);
            p.run_for(Duration::from_millis(1));
        }
        lagging_member_3_asks_and_is_granted(&mut p, followed);
    }

    /// Node 1, back in the start-up role, is asked for its vote by member 3, a lagging
    /// backup of the epoch it followed, and grants it: it is no successor of its own.
    fn lagging_member_3_asks_and_is_granted(p: &mut Pair, followed: u64) {
        assert_eq!(p.node(1).role(), Role::Starting);
        let epoch = Epoch(followed).next(3).unwrap().0;
        let request = Body::VoteRequest {
            epoch,
            commit_highest: p.node(1).frames_known(),
        };
        let bytes = from(p, 3, WireRole::Backup, WireSync::Lagging, followed, request);
        p.inject(1, 1, &bytes);
        assert_eq!(votes(p, 1), [(epoch, true)], "it refused the only holder");
        assert_eq!(p.node(1).successor(), Some(3));
    }

    /// A joining backup's primary dies; a lagging member's round reaches it as its window
    /// ends, before its timer puts it back in the start-up role (the shell reads the
    /// datagrams of a wake-up before its timeout). Joining, it holds no state it could
    /// lead from: it is no successor in its own view and grants, though it weighs more.
    /// (Mutant `succession.rs:78:40` `&&` → `||`: every backup counted itself; it refused
    /// the only holder of the group's state, whose takeover waited a round. Schemata run
    /// of 64df4f8, 2026-11-27.)
    #[test]
    fn joining_primary_silent_for_its_window_lagging_member_asks_granted() {
        let mut p = group(&[(3, 1, false)], 5);
        let followed = p.node(1).epoch();
        p.crash(0);
        let node = p.nodes[1].as_mut().unwrap();
        node.start_join(Some(ResyncCause::Lag));
        p.drain(1);
        let window_end = p.node(1).primary_heard_at + p.configs[1].detection_window();
        while p.now + Duration::from_millis(1) < window_end {
            let bytes = from(&p, 3, WireRole::Backup, WireSync::Lagging, followed, heartbeat(&p));
            p.inject(1, 1, &bytes);
            p.run_for(Duration::from_millis(1));
        }
        let epoch = Epoch(followed).next(3).unwrap().0;
        let request = Body::VoteRequest {
            epoch,
            commit_highest: p.node(1).frames_known(),
        };
        let bytes = from(&p, 3, WireRole::Backup, WireSync::Lagging, followed, request);
        p.now = window_end;
        p.inject(1, 1, &bytes);
        assert_eq!(
            (p.node(1).role(), p.node(1).status().sync),
            (Role::Backup, SyncState::Joining)
        );
        assert_eq!(votes(&p, 1), [(epoch, true)], "it refused the only holder");
        assert_eq!(p.node(1).successor(), Some(3));
    }

    /// A group's backup asked to hand over to another backup of the group forwards the
    /// request to the primary, which checks the target; only a target the backup hears
    /// as the primary is refused at once. (Mutant `switchover.rs:93:39`, the guard →
    /// `true`: every named peer was refused as the primary, and the operator could not
    /// switch over from a backup's console. Schemata run of 64df4f8, 2026-11-27.)
    #[test]
    fn backup_group_switchover_to_another_backup_forwarded() {
        let mut p = group(&[(3, 1, false)], 5);
        run_with_backup(&mut p, 3, 1, Duration::from_millis(5));
        assert_eq!(p.primary(), Some(0));
        assert_eq!(
            p.command(1, crate::node::Command::SwitchoverTo(1)),
            crate::node::CommandReply::Refused(crate::node::RefuseReason::TargetIsPrimary)
        );
        assert_eq!(
            p.command(1, crate::node::Command::SwitchoverTo(3)),
            crate::node::CommandReply::Forwarded
        );
    }

    /// A member heard as a joining backup holds no state: it is never the successor,
    /// however heavy. A voter that hears a heavier joiner beside a lagging member that
    /// asks for votes grants the lagging one, the only holder of the group's state.
    /// (Mutant `succession.rs:112:17` `||` → `&&`: a backup of the right id was ranked
    /// whatever its sync; the joiner was the successor in the voter's view and the holder
    /// was refused while the joiner was heard. Schemata run of 64df4f8, 2026-11-27.)
    #[test]
    fn starting_heavier_joiner_heard_lagging_member_asks_granted() {
        let mut p = group(&[(3, 1, false), (4, 10, false)], 5);
        let followed = p.node(1).epoch();
        p.crash(0);
        let node = p.nodes[1].as_mut().unwrap();
        node.start_join(Some(ResyncCause::Lag));
        p.drain(1);
        let until = p.now + Duration::from_millis(30);
        while p.now < until {
            let frame = p.node(1).frames_known();
            let lagging = from_at(
                &p,
                3,
                WireRole::Backup,
                WireSync::Lagging,
                followed,
                frame,
                heartbeat(&p),
            );
            p.inject(1, 1, &lagging);
            let joining = from_at(
                &p,
                4,
                WireRole::Backup,
                WireSync::Joining,
                followed,
                frame,
                heartbeat(&p),
            );
            p.inject(1, 2, &joining);
            p.run_for(Duration::from_millis(1));
        }
        lagging_member_3_asks_and_is_granted(&mut p, followed);
    }

    /// A member's rank goes by what its own messages say: a backup of another id heard on
    /// its link (a node wired or configured wrong) is not that member, however in sync.
    /// (Mutant `succession.rs:111:17` `||` → `&&`: a backup of any id on a member's link
    /// was ranked as that member, and a voter took it for the successor. Schemata run of
    /// 64df4f8, 2026-11-27.)
    #[test]
    fn backup_group_another_id_on_a_members_link_not_ranked() {
        let mut p = group(&[(3, 10, false)], 5);
        let followed = p.node(1).epoch();
        let bytes = from(&p, 9, WireRole::Backup, WireSync::InSync, followed, heartbeat(&p));
        p.inject(1, 1, &bytes);
        assert_eq!(p.node(1).peers[1].status.map(|s| s.node_id), Some(9), "heard");
        assert_eq!(p.node(1).successor(), Some(2));
    }

    /// What a member asked for votes with is its own word: a vote request heard on a
    /// member's link from another id (a node wired or configured wrong), or a member's
    /// request for an epoch that names another node, is not kept as that member's ask, and
    /// the frames it claims do not make this node pass itself over. (Mutant
    /// `succession.rs:208:19` `&&` → `||` in `on_vote_request`: either was kept, and a
    /// claim above every member's frames left this node with no successor. Schemata run
    /// of 64df4f8, 2026-11-27.)
    #[test]
    fn backup_group_vote_request_not_its_members_own_not_kept_as_its_ask() {
        // The successor: this node, or member 3 (heavier) when it is heard as itself.
        for (sender, epoch_of, successor) in [(9, 9, 2), (3, 9, 3)] {
            let mut p = group(&[(3, 10, false)], 5);
            let followed = p.node(1).epoch();
            let request = Body::VoteRequest {
                epoch: Epoch(followed).next(epoch_of).unwrap().0,
                commit_highest: p.node(1).frame() + 1000,
            };
            let bytes = from(&p, sender, WireRole::Backup, WireSync::InSync, followed, request);
            p.inject(1, 1, &bytes);
            let case = format!("node {sender} asking an epoch of node {epoch_of}");
            assert_eq!(p.node(1).slot_asked(1), None, "{case}");
            assert_eq!(p.node(1).successor(), Some(successor), "{case}");
        }
    }

    /// A joining member counts no stall while its primary says it has run no frame yet, and
    /// only then: another member heard joining, in this epoch and at frame 0, is not its
    /// primary. Given no beginning for its stall limit (the primary does not serve its id),
    /// node 2 asks under a new id and joins. (Mutant `transfer.rs:543:66` `&&` → `||` in
    /// `primary_yet_to_run` as the schemata build has it, `(primary || this epoch) && frame
    /// 0`: member 3 joining counted as a primary yet to run, no stall came, and node 2
    /// asked under the same id for good. Its textual form, `primary || (this epoch &&
    /// frame 0)`, fails `joining_id_not_served_by_the_primary_…` too. Schemata run of
    /// 64df4f8, 2026-11-27.)
    #[test]
    fn joining_member_id_not_served_beside_a_joining_member_asks_under_a_new_id() {
        let mut p = group(&[(3, 1, false)], 5);
        let followed = p.node(1).epoch();
        let node = p.nodes[1].as_mut().unwrap();
        let id = node.transfer_id_next;
        node.start_join(Some(ResyncCause::Divergence));
        p.drain(1);
        // As if node 1 had streamed another snapshot under that id.
        let primary = p.nodes[0].as_mut().unwrap();
        primary.tx_ids[primary.tx_ids_next] = id;
        let c = &p.configs[1];
        let stall_limit = Duration::from_millis(2 * c.detection_window_ms + 4 * c.retry_ms);
        let until = p.now + stall_limit * 2;
        while p.now < until && p.node(1).status().sync != SyncState::InSync {
            let bytes = from_at(&p, 3, WireRole::Backup, WireSync::Joining, followed, 0, heartbeat(&p));
            p.inject(1, 1, &bytes);
            p.run_for(Duration::from_millis(1));
        }
        let reasons: std::vec::Vec<Reason> = p
            .transitions
            .iter()
            .filter(|(i, _)| *i == 1)
            .map(|(_, t)| t.reason)
            .collect();
        assert_eq!(p.node(1).status().sync, SyncState::InSync, "{reasons:?}");
        let failed = Reason::ResyncStarted(ResyncCause::TransferFailed);
        assert!(reasons.contains(&failed), "{reasons:?}");
    }

    /// A member's message heard at the same instant as the primary's last says nothing of
    /// the frames it ran since (it may have left before the primary's): only a later one
    /// tells what the member can decide, so a heavier member heard with an older frame at
    /// that instant keeps its rank. (Mutant `succession.rs:120:42` `>` → `>=`: such a
    /// message counted, the member was passed over as behind, and this node took itself
    /// for the successor. Schemata run of 64df4f8, 2026-11-27.)
    #[test]
    fn backup_group_member_heard_with_the_primarys_last_keeps_its_rank() {
        let mut p = group(&[(3, 10, false)], 5);
        p.run_for(Duration::from_millis(20));
        let until = p.now + Duration::from_millis(20);
        assert!(p.run_until(until, |p| p.node(1).primary_heard_at == p.now));
        let followed = p.node(1).epoch();
        let behind = p.node(1).frame() - 5;
        let bytes = from_at(
            &p,
            3,
            WireRole::Backup,
            WireSync::InSync,
            followed,
            behind,
            heartbeat(&p),
        );
        p.inject(1, 1, &bytes);
        assert_eq!(
            p.node(1).peers[1].status.map(|s| s.last_heard),
            Some(p.node(1).primary_heard_at)
        );
        assert_eq!(p.node(1).successor(), Some(3));
    }

    /// A group of node 1 and member 3, node 1 a backup, to which member 3 (an in-sync
    /// backup of its epoch) has just sent a vote request for the next term, holding
    /// commits to frame 7.
    fn member_3_asked_with_7() -> Pair {
        let mut p = group(&[(3, 1, false)], 5);
        let followed = p.node(1).epoch();
        let request = Body::VoteRequest {
            epoch: Epoch(followed).next(3).unwrap().0,
            commit_highest: 7,
        };
        let bytes = from(&p, 3, WireRole::Backup, WireSync::InSync, followed, request);
        p.inject(1, 1, &bytes);
        p
    }

    /// What a member asked for votes with is remembered for twice the longer of a
    /// detection window and the start-up wait (a starting candidate asks once a start-up
    /// wait): between two of its rounds it still tells how far that member can decide,
    /// and the successor is judged by it. (Mutant `succession.rs:140:85` `*` → `/`: kept
    /// for a quarter of that, forgotten between a starting candidate's rounds, and a
    /// member holding fewer frames could be taken for the successor again. Schemata run
    /// of 64df4f8, 2026-11-27.)
    #[test]
    fn backup_group_member_ask_remembered_between_its_rounds() {
        let mut p = member_3_asked_with_7();
        assert_eq!(p.node(1).slot_asked(1), Some(7));
        let wait = p.configs[1].startup_wait_ms.max(p.configs[1].detection_window_ms);
        p.run_for(Duration::from_millis(wait + 1));
        assert_eq!(p.node(1).slot_asked(1), Some(7), "forgotten before the next round");
        p.run_for(Duration::from_millis(wait));
        assert_eq!(p.node(1).slot_asked(1), None);
    }

    /// The ask is remembered for less than twice the window, to the nanosecond: heard
    /// a nanosecond before it ends, still told; at its end, forgotten. (Mutant
    /// `succession.rs:143:62` `<` → `<=` in `slot_asked`: still told at the end. Schemata
    /// run of 64df4f8, 2026-11-27.)
    #[test]
    fn backup_group_member_ask_forgotten_at_twice_the_window() {
        let mut p = member_3_asked_with_7();
        let followed = p.node(1).epoch();
        let asked_at = p.now;
        let c = &p.configs[1];
        let window = Duration::from_millis(2 * c.startup_wait_ms.max(c.detection_window_ms));
        // Member 3's heartbeat wakes node 2 at each instant; it asks nothing.
        let heard_at = |p: &mut Pair, at: Instant| {
            p.run_until(at, |_| false);
            let beat = from(p, 3, WireRole::Backup, WireSync::InSync, followed, heartbeat(p));
            p.inject(1, 1, &beat);
            assert_eq!(p.node(1).now, at);
            p.node(1).slot_asked(1)
        };
        let end = asked_at + window;
        assert_eq!(heard_at(&mut p, end - Duration::from_nanos(1)), Some(7));
        assert_eq!(heard_at(&mut p, end), None);
    }

    /// A backup that hears its primary refuses a starting member's request, though the
    /// member says it holds more frames than this node could decide and asks above every
    /// epoch seen: a live primary is never deposed. (Mutants `succession.rs:303:15` `==`
    /// → `!=` and `305:17` `&&` → `||` in `vote_grants_starting`: the grant went without
    /// the window, and with one more grant the member led beside the live primary until
    /// the fence. Schemata run of 64df4f8, 2026-11-27.)
    #[test]
    fn backup_primary_alive_starting_member_holding_more_refused() {
        let mut p = group(&[(3, 1, false)], 5);
        run_with_backup(&mut p, 3, 1, Duration::from_millis(20));
        let followed = p.node(1).epoch();
        let asked = Epoch(followed).next(3).unwrap().0;
        let request = Body::VoteRequest {
            epoch: asked,
            commit_highest: complete(&p).max(p.node(1).frames_held_to()) + 5,
        };
        let bytes = from(&p, 3, WireRole::Starting, WireSync::NotApplicable, followed, request);
        p.inject(1, 1, &bytes);
        assert_eq!(votes(&p, 1), [(asked, false)]);
        assert_eq!(p.node(0).role(), Role::Primary);
        assert_eq!((p.node(1).role(), p.node(1).epoch()), (Role::Backup, followed));
    }

    /// Node 2's primary crashed; the old primary (member 1) restarted with its state,
    /// holding the frames node 2 lacks, asks `epoch` from the start-up role on link 0:
    /// node 2's answers there.
    fn old_primary_asks_holding_more(p: &mut Pair, epoch: u64) -> std::vec::Vec<(u64, bool)> {
        let followed = p.node(1).epoch();
        let request = Body::VoteRequest {
            epoch,
            commit_highest: complete(p).max(p.node(1).frames_held_to()) + 1,
        };
        let bytes = from(p, 1, WireRole::Starting, WireSync::NotApplicable, followed, request);
        p.inject(1, 0, &bytes);
        votes(p, 0)
    }

    /// A backup that is not the successor in its view (a heavier member in sync, as far)
    /// grants a starting member holding more frames than it could decide once its primary
    /// is silent for its window: the successor holds less and cannot win against it.
    /// (Mutants `succession.rs:304:44` `||` → `&&`, `304:24` `>` → `==` and `>` → `<`
    /// in `vote_grants_starting`: refused unless this node asked a round of its own — a
    /// voter short of its commits never does — and the group could wait for ever, the
    /// case `vote_grants_starting` was written for (DST `--nodes 3 --seed 2`); 17, 7 and
    /// 7 more of 200 `--nodes 3` seeds ended without a primary, counted as waits by
    /// design. Schemata run of 64df4f8, 2026-11-27.)
    #[test]
    fn backup_not_successor_grants_a_starting_member_holding_more_after_its_window() {
        let mut p = group(&[(3, 10, false)], 5);
        let followed = p.node(1).epoch();
        p.crash(0);
        run_with_backup(&mut p, 3, 1, Duration::from_millis(30));
        assert_eq!(p.node(1).successor(), Some(3));
        assert!(vote_requests(&p, 1).is_empty(), "node 2 does not stand");
        let asked = Epoch(followed).next(1).unwrap().0;
        assert_eq!(old_primary_asks_holding_more(&mut p, asked), [(asked, true)]);
    }

    /// A backup asking for votes grants a starting member holding more frames than it
    /// could decide, though the member asks an epoch below its own round's: this node's
    /// round does not bar the grant, it gives the round up. (Mutant `succession.rs:302:59`
    /// `==` → `!=` in `vote_grants_starting`: its own asking round no longer counted, the
    /// member was refused and had to ask again above its bar, a round later; `304:44`
    /// `||` → `&&` likewise. Schemata run of 64df4f8, 2026-11-27.)
    #[test]
    fn backup_asking_grants_a_starting_member_holding_more_below_its_own_epoch() {
        let (mut p, asked) = candidate_asking();
        assert_eq!(p.node(1).vote.and_then(|round| round.epoch), Some(Epoch(asked)));
        let theirs = Epoch(p.node(1).epoch()).next(1).unwrap().0;
        assert!(theirs < asked, "{theirs:#x} {asked:#x}");
        assert_eq!(old_primary_asks_holding_more(&mut p, theirs), [(theirs, true)]);
        assert!(p.node(1).vote.is_none(), "its round given up");
    }

    /// A backup that granted member 3 an epoch (member 3 has not led it: the grant lost)
    /// and waits again, member 3 still the successor, refuses a starting member an epoch
    /// below that grant, though it holds more frames: granted too, both could lead, each
    /// with its majority. (Mutant `succession.rs:302:59` `==` → `!=` in
    /// `vote_grants_starting`: a round without an epoch of its own counted as its own, and
    /// the lower epoch was granted; `304:24` `>` → `<` and `303:15` `==` → `!=` likewise.
    /// Schemata run of 64df4f8, 2026-11-27.)
    #[test]
    fn backup_granted_then_waiting_starting_member_below_the_grant_refused() {
        let mut p = group(&[(3, 10, false)], 5);
        let followed = p.node(1).epoch();
        p.crash(0);
        run_with_backup(&mut p, 3, 1, Duration::from_millis(30));
        let granted = Epoch(followed).next(3).unwrap().0;
        let request = Body::VoteRequest {
            epoch: granted,
            commit_highest: complete(&p),
        };
        let bytes = from(&p, 3, WireRole::Backup, WireSync::InSync, followed, request);
        p.inject(1, 1, &bytes);
        assert_eq!(votes(&p, 1), [(granted, true)]);
        run_with_backup(&mut p, 3, 1, Duration::from_millis(30));
        assert_eq!(p.node(1).vote.map(|round| round.epoch), Some(None), "waits again");
        let below = Epoch(followed).next(1).unwrap().0;
        assert!(below < granted);
        assert_eq!(old_primary_asks_holding_more(&mut p, below), [(below, false)]);
    }

    /// A start-up request from member 2 to `node` on link 0, its state of `origin`
    /// ending at `commit_highest`: `node`'s answers.
    fn ask_start_up<A: App>(
        node: &mut Node<A>,
        now: Instant,
        epoch: u64,
        origin: u64,
        commit_highest: u64,
    ) -> std::vec::Vec<(u64, bool)> {
        let request = Body::VoteRequest { epoch, commit_highest };
        let bytes = to(
            node,
            2,
            WireRole::Starting,
            WireSync::NotApplicable,
            0x101,
            origin,
            request,
        );
        node.handle_message(now, 0, &bytes);
        answers(&drained(node), 0)
    }

    /// A starting voter that ran frames to 40, no holder of the group's state alive (a
    /// joining backup holds none: it will neither lead nor take over), grants a start-up
    /// candidate only as complete as that: one whose frames end at 39 is refused, and so
    /// is a cold one (it would decide the group's frames anew); one ending at 40 is
    /// granted. (Mutants in `vote_grants_startup`: `succession.rs:344:33` `==` → `!=`, a
    /// cold candidate granted, a complete one refused; `347:28` `>=` → `<`, only a
    /// candidate behind granted; `353:56` `&&` → `||`, a joining backup counted as a
    /// holder; `357:13` `&&` → `||`, schemata form `(epoch > granted || complete) && …`,
    /// any candidate granted. Schemata run of 64df4f8, 2026-11-27.)
    #[test]
    fn starting_voter_start_up_candidate_granted_only_complete() {
        let mut node = lone(1, false, &[(2, 1, false), (3, 1, false)]);
        node.frame_last_run = 40;
        let now = node.now + Duration::from_millis(1000);
        let joiner = to(
            &node,
            3,
            WireRole::Backup,
            WireSync::Joining,
            0x101,
            0,
            lone_heartbeat(&node),
        );
        node.handle_message(now, 1, &joiner);
        drained(&mut node);
        assert_eq!(ask_start_up(&mut node, now, 0x202, 0x101, 39), [(0x202, false)]);
        assert_eq!(ask_start_up(&mut node, now, 0x202, 0, 0), [(0x202, false)]);
        assert_eq!(ask_start_up(&mut node, now, 0x202, 0x101, 40), [(0x202, true)]);
    }

    /// A starting voter grants a start-up candidate only an epoch above every epoch it
    /// has seen: once a restarted member announced the epoch member 2 asks (a vote it
    /// gave before its restart, its floor), it refuses it, its bar that epoch. (Mutant
    /// `succession.rs:331:22` `>` → `>=` in `vote_grants_startup`, as `261:22` in
    /// `vote_grants`: no plant effect found. Schemata run of 64df4f8, 2026-11-27.)
    #[test]
    fn starting_voter_start_up_epoch_announced_by_a_restarted_member_refused() {
        let mut node = lone(1, false, &[(2, 1, false), (3, 1, false)]);
        node.frame_last_run = 40;
        let now = node.now + Duration::from_millis(1000);
        let announce = starting_heartbeat(&node, 3, 0x202);
        node.handle_message(now, 1, &announce);
        drained(&mut node);
        assert_eq!(node.epochs.max_seen(), Epoch(0x202));
        assert_eq!(ask_start_up(&mut node, now, 0x202, 0x101, 40), [(0x202, false)]);
        assert_eq!(node.vote_bar(), Epoch(0x202));
    }

    /// A witness that followed a primary which ran no frame it heard of (its headers said
    /// frame 0), the primary silent since, knows of no frame the group ran: it grants a
    /// cold start-up candidate, as a starting witness would. (Mutant `succession.rs:324:87`
    /// `==` → `!=` in `vote_grants_startup`: a witness following a primary never voted
    /// from the start-up role, and a group of two members and a witness whose primary
    /// died before its first frame had no majority for a cold start. Schemata run of
    /// 64df4f8, 2026-11-27.)
    #[test]
    fn backup_witness_primary_silent_before_a_frame_grants_a_cold_start_up_candidate() {
        let mut node = lone(3, true, &[(1, 1, false), (2, 5, false)]);
        let now = node.now;
        let primary = to(
            &node,
            1,
            WireRole::Primary,
            WireSync::NotApplicable,
            0x101,
            0x101,
            lone_heartbeat(&node),
        );
        node.handle_message(now, 0, &primary);
        assert_eq!(node.role(), Role::Backup);
        let until = node.now + Duration::from_millis(50);
        run_lone(&mut node, until, |_, _| {});
        assert_eq!((node.role(), node.primary_frame_heard), (Role::Backup, 0));
        let now = node.now;
        let request = Body::VoteRequest {
            epoch: 0x202,
            commit_highest: 0,
        };
        let bytes = to(&node, 2, WireRole::Starting, WireSync::NotApplicable, 0x101, 0, request);
        node.handle_message(now, 1, &bytes);
        let actions = drained(&mut node);
        assert_eq!(answers(&actions, 1), [(0x202, true)]);
        assert!(actions.contains(&Action::ReserveEpoch(0x202)), "{actions:?}");
    }

    /// A member restarted cold knows nothing of how far the group ran: it refuses a
    /// backup's request, however long it waited (the candidate may lack frames the dead
    /// primary ran and emitted). (Mutant `succession.rs:384:22` `==` → `!=` in
    /// `vote_complete`: a starting member that knew nothing took every candidate as
    /// complete — 35 frames decided anew in 200 `--nodes 3` seeds, counted `redecided` —
    /// and a backup that knew nothing refused all. Schemata run of 64df4f8, 2026-11-27.)
    #[test]
    fn starting_restarted_knowing_nothing_backup_request_refused() {
        let mut node = lone(1, false, &[(2, 1, false), (3, 1, false)]);
        let now = node.now + Duration::from_millis(1000);
        let request = Body::VoteRequest {
            epoch: 0x202,
            commit_highest: 9,
        };
        let bytes = to(&node, 2, WireRole::Backup, WireSync::InSync, 0x101, 0x101, request);
        node.handle_message(now, 0, &bytes);
        let actions = drained(&mut node);
        assert_eq!(answers(&actions, 0), [(0x202, false)]);
        assert!(!actions.contains(&Action::ReserveEpoch(0x202)), "{actions:?}");
    }

    /// What a node can decide as its primary did, in a row from the last frame it ran (a
    /// backup whose action queue was full holds commits it has not run yet): each commit
    /// whose input it holds, each skip; it stops at a commit whose input it lacks — it
    /// would decide that frame anew — and goes on once the input is there. (Mutants in
    /// `frames_held_to`: `succession.rs:410:20` `<` → `==` and `<` → `>`, nothing past the
    /// last frame run; `413:17` the skip's arm deleted; `415:24` the input check `true`,
    /// a commit without its input counted, or `false`, no commit of a run frame counted.
    /// Schemata run of 64df4f8, 2026-11-27.)
    #[test]
    fn backup_frames_held_to_the_first_commit_without_its_input() {
        let mut node = lone(1, false, &[(2, 1, false), (3, 1, false)]);
        node.frame_last_run = 10;
        let ran = |frame: u64| Commit {
            frame,
            kind: CommitKind::Ran {
                input_digest: crate::digest::fnv64(&TestApp::payload_for(frame)),
                outputs: 0,
                sent_mask: 0,
                output_digest: 0,
            },
            state_digest: None,
            writes: Default::default(),
        };
        for frame in [11, 15, 16, 17] {
            node.ring.put_commit(ran(frame));
        }
        node.ring.put_commit(Commit {
            frame: 12,
            kind: CommitKind::Skipped { last: 14 },
            state_digest: None,
            writes: Default::default(),
        });
        for frame in [11, 15, 17] {
            node.ring.put_payload(frame, &TestApp::payload_for(frame));
        }
        node.commit_highest = 17;
        assert_eq!(node.frames_held_to(), 15, "frame 16's input missing");
        node.ring.put_payload(16, &TestApp::payload_for(16));
        assert_eq!(node.frames_held_to(), 17);
    }

    /// A group's primary held after a stall runs its frames from the end of its hold
    /// (its peers' window), fresh messages heard meanwhile making a majority. (Mutant
    /// `succession.rs:442:64` `<` → `<=` in `primary_quorum_heard`: held at that instant
    /// too, its frames ran at its next wake-up. Schemata run of 64df4f8, 2026-11-27.)
    #[test]
    fn primary_group_stalled_runs_at_the_end_of_its_hold() {
        let (mut node, mut now, ran) = group_primary_stalled();
        drained(&mut node);
        assert_eq!(node.frame(), ran, "held after the stall");
        let end = now + node.config.backup_silence();
        assert_eq!(node.quorum_hold_until, Some(end));
        while now + Duration::from_millis(1) < end {
            now = now + Duration::from_millis(1);
            hear_starting_witness(&mut node, now);
        }
        drained(&mut node);
        assert_eq!(node.frame(), ran, "held until its end");
        hear_starting_witness(&mut node, end);
        node.handle_frame(end, 3, &TestApp::payload_for(3));
        assert_eq!(node.frame(), 3, "runs at the end of the hold");
        assert_eq!(node.role(), Role::Primary);
    }

    /// A group's backup that stalled (frozen for ten windows) while its primary died, then
    /// wins its votes, runs its frames as soon as it leads: the hold after a stall is a
    /// primary's (its voters may have elected another meanwhile, and its socket's backlog
    /// makes them look heard); a backup's grants are fresh. (Mutant `succession.rs:458:39`
    /// `&&` → `||` in `quorum_after_stall`, schemata form `(primary || group) && stalled`:
    /// the stalled backup's hold carried into its lead, its frames held for its peers'
    /// window after the takeover. The textual form `primary || (group && stalled)` held a
    /// group's primary after every event. Schemata run of 64df4f8, 2026-11-27.)
    #[test]
    fn backup_group_stalled_then_elected_runs_its_frames_at_once() {
        let mut p = group(&[(3, 1, false)], 5);
        p.crash(0);
        let stall = p.configs[1].detection_window() * 10;
        p.freeze(1, stall);
        p.run_for(stall);
        let thawed = p.now;
        let until = thawed + Duration::from_millis(10);
        while vote_requests(&p, 1).is_empty() && p.now < until {
            run_with_backup(&mut p, 3, 1, Duration::from_millis(1));
        }
        let epoch = *vote_requests(&p, 1).last().expect("asked");
        let grant = Body::Vote {
            epoch,
            granted: true,
            commit_highest: 0,
            bar: epoch,
        };
        let bytes = from(&p, 3, WireRole::Backup, WireSync::InSync, p.node(1).epoch(), grant);
        p.inject(1, 1, &bytes);
        assert_eq!((p.node(1).role(), p.node(1).epoch()), (Role::Primary, epoch));
        let led = p.node(1).frame();
        run_with_backup(&mut p, 3, 1, Duration::from_millis(3));
        assert!(
            p.now < thawed + p.configs[1].backup_silence(),
            "within its peers' window"
        );
        assert!(p.node(1).frame() > led, "ran nothing since it led at frame {led}");
    }

    /// A heartbeat of member `id`, starting and cold, its start-up draw `nonce`.
    fn starting_drawn(node: &Node<TestApp>, id: u8, nonce: u64) -> wire::WireBuf {
        let mut body = lone_heartbeat(node);
        if let Body::Heartbeat { nonce: drawn, .. } = &mut body {
            *drawn = nonce;
        }
        to(node, id, WireRole::Starting, WireSync::NotApplicable, 0, 0, body)
    }

    /// The reason of `node`'s last transition to primary in `actions`.
    fn led_for(actions: &[Action]) -> Option<Reason> {
        actions.iter().rev().find_map(|a| match a {
            Action::Transition(t) if t.role == Role::Primary => Some(t.reason),
            _ => None,
        })
    }

    /// A group's starting node weighs only live members in its start-up draw, never the
    /// witness (it never leads): a witness whose draw is the highest is no contest, and
    /// the node leads its cold start with it, `StartedFirst`; a member last heard
    /// starting with a higher draw, then silent past its window, bars nothing. (Mutant
    /// `succession.rs:581:43` `||` → `&&` in `group_election_timeout`: a live witness
    /// and every silent member were weighed, their last status kept for ever — the node
    /// waited on the witness's draw or on a member long gone, and a witness group's cold
    /// start had no primary. Schemata run of 64df4f8, 2026-11-27: no witness shape in its
    /// DST.)
    #[test]
    fn starting_group_draw_weighs_live_members_not_the_witness() {
        let mut node = lone(1, false, &[(2, 1, false), (3, 0, true)]);
        let until = node.now + Duration::from_millis(100);
        let actions = run_lone(&mut node, until, |node, now| {
            let bytes = starting_drawn(node, 3, u64::MAX);
            node.handle_message(now, 1, &bytes);
        });
        assert_eq!(node.role(), Role::Primary);
        assert_eq!(led_for(&actions), Some(Reason::StartedFirst));

        let mut node = lone(1, false, &[(2, 1, false), (3, 0, true)]);
        let until = node.now + Duration::from_millis(10);
        run_lone(&mut node, until, |node, now| {
            for (id, link, nonce) in [(2, 0, u64::MAX), (3, 1, 0)] {
                let bytes = starting_drawn(node, id, nonce);
                node.handle_message(now, link, &bytes);
            }
        });
        assert_eq!(node.role(), Role::Starting, "member 2's draw is higher");
        let until = node.now + Duration::from_millis(200);
        run_lone(&mut node, until, |node, now| {
            let bytes = starting_drawn(node, 3, 0);
            node.handle_message(now, 1, &bytes);
        });
        assert_eq!(node.role(), Role::Primary, "member 2 silent");
    }

    /// A group's starting node waits while a live starting member's draw (holds state,
    /// priority, nonce) is at or above its own, keeping its own draw meanwhile (a draw
    /// that differs is no tie); a tie at its decision redraws it. (Mutants in
    /// `group_election_timeout`: `succession.rs:592:26` `|=` → `&=`, a higher draw made
    /// nobody wait — both asked for votes, the configured priority not honoured;
    /// `593:35` `==` → `!=`, its draw redrawn at every decision with a contest, the order
    /// reshuffled each start-up wait; `593:25` `|=` → `&=`, a tie at the decision kept.
    /// The tie is set by hand: a heartbeat that ties redraws at once, `election_on_peer`.
    /// Schemata run of 64df4f8, 2026-11-27.)
    #[test]
    fn starting_group_below_a_starting_members_draw_waits_redraws_only_on_a_tie() {
        let mut node = lone(1, false, &[(2, 1, false), (3, 0, true)]);
        let drawn = node.nonce;
        let hear = |node: &mut Node<TestApp>, now: Instant| {
            for (id, link, nonce) in [(2, 0, u64::MAX), (3, 1, 0)] {
                let bytes = starting_drawn(node, id, nonce);
                node.handle_message(now, link, &bytes);
            }
        };
        let until = node.now + Duration::from_millis(100);
        run_lone(&mut node, until, hear);
        assert_eq!(node.role(), Role::Starting, "member 2's draw is higher");
        assert_eq!(node.nonce, drawn, "no tie, no redraw");
        let deadline = node.startup_deadline.expect("it decides again");
        let before = node.now.max(deadline - Duration::from_micros(100));
        hear(&mut node, before);
        node.peers[0].nonce = drawn;
        node.handle_timeout(deadline);
        assert_ne!(node.nonce, drawn, "a tie redraws");
        assert_eq!(node.role(), Role::Starting);
    }

    /// The epochs of the `VoteRequest`s in `actions`.
    fn requests_in(actions: &[Action]) -> std::vec::Vec<u64> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Transmit { bytes, .. } => match wire::decode(bytes, None).map(|e| e.body) {
                    Ok(Body::VoteRequest { epoch, .. }) => Some(epoch),
                    _ => None,
                },
                _ => None,
            })
            .collect()
    }

    /// A group of four voters: a starting node that hears one peer of three (half the
    /// voters with itself) asks no start-up votes — it could not win them. (Mutant
    /// `succession.rs:626:39` `>` → `>=` in `group_election_timeout`: half counted as a
    /// majority; the rounds, a reservation each, won nothing (`on_vote` counts a strict
    /// majority) and drew its peer's grant, which bars that peer's own round for a
    /// window. Schemata run of 64df4f8, 2026-11-27: no group of four in its DST.)
    #[test]
    fn starting_group_of_four_hearing_one_peer_asks_no_votes() {
        let mut node = lone(1, false, &[(2, 1, false), (3, 1, false), (4, 0, true)]);
        let until = node.now + Duration::from_millis(100);
        let actions = run_steps(
            &mut node,
            until,
            |node, now| {
                let bytes = starting_drawn(node, 2, 0);
                node.handle_message(now, 0, &bytes);
            },
            false,
        );
        assert_eq!(requests_in(&actions), [0u64; 0]);
        assert_eq!(node.role(), Role::Starting);
    }

    /// A starting voter that granted a start-up candidate asks no start-up round of its
    /// own within a detection window of the grant, though it would lead otherwise (a
    /// majority heard, its draw the higher): the candidate gets that window to lead.
    /// Past it, it asks. (Mutant `succession.rs:652:79` `<` → `==` in
    /// `startup_vote_start`: it asked at once, and the voters that had not granted the
    /// candidate could elect it too — two leads from the start-up role, one vote of this
    /// node in each. Schemata run of 64df4f8, 2026-11-27.)
    #[test]
    fn starting_voter_granted_a_start_up_candidate_asks_nothing_for_a_window() {
        let mut node = lone(1, false, &[(2, 1, false), (3, 0, true)]);
        let hear = |node: &mut Node<TestApp>, now: Instant| {
            for (id, link) in [(2, 0), (3, 1)] {
                let bytes = starting_drawn(node, id, 0);
                node.handle_message(now, link, &bytes);
            }
        };
        let deadline = node.startup_deadline.expect("deciding");
        let asked_at = deadline - Duration::from_millis(1);
        let quiet = run_steps(&mut node, asked_at, hear, false);
        assert_eq!(requests_in(&quiet), [0u64; 0]);
        assert_eq!(ask_start_up(&mut node, asked_at, 0x202, 0, 0), [(0x202, true)]);
        hear(&mut node, asked_at);
        drained(&mut node);
        node.handle_timeout(deadline);
        assert_eq!(
            requests_in(&drained(&mut node)),
            [0u64; 0],
            "within a window of its grant"
        );
        let until = deadline + node.config.startup_wait() + Duration::from_millis(1);
        let later = run_steps(&mut node, until, hear, false);
        assert!(!requests_in(&later).is_empty(), "past the window it asks");
    }

    /// A heartbeat of member `id`, starting, cold, its draw 0, announcing `epoch`.
    fn starting_cold_at(node: &Node<TestApp>, id: u8, epoch: u64) -> wire::WireBuf {
        let mut body = lone_heartbeat(node);
        if let Body::Heartbeat { nonce, .. } = &mut body {
            *nonce = 0;
        }
        to(node, id, WireRole::Starting, WireSync::NotApplicable, epoch, 0, body)
    }

    /// A group that had state (an epoch announced) restarted cold as a whole: its
    /// starting node leads a cold start once every member that may lead has been heard
    /// cold for the start-up wait — and not while one of them is silent, though heard
    /// cold before (it may hold the state behind a partition, or have joined since): it
    /// holds the cold start (`ColdStartHeld`). (Mutants in `group_peers_cold`:
    /// `succession.rs:705:9` → `false`, the whole group's cold start held for ever — 27
    /// more of 200 `--nodes 3` seeds ended without a primary, counted as waits by
    /// design; `709:21` `&&` → `||`, schemata form `(alive || cold) && cold long enough`,
    /// textual `alive || (cold && …)`: the silent member counted cold. Schemata run of
    /// 64df4f8, 2026-11-27.)
    #[test]
    fn starting_group_restarted_cold_leads_only_with_every_member_heard_cold() {
        let mut node = lone(1, false, &[(2, 1, false), (3, 1, false)]);
        let until = node.now + Duration::from_millis(100);
        run_lone(&mut node, until, |node, now| {
            for (id, link) in [(2, 0), (3, 1)] {
                let bytes = starting_cold_at(node, id, 0x101);
                node.handle_message(now, link, &bytes);
            }
        });
        assert_eq!(node.role(), Role::Primary, "every member heard cold");

        let mut node = lone(1, false, &[(2, 1, false), (3, 1, false)]);
        let until = node.now + Duration::from_millis(10);
        run_lone(&mut node, until, |node, now| {
            for (id, link) in [(2, 0), (3, 1)] {
                let bytes = starting_cold_at(node, id, 0x101);
                node.handle_message(now, link, &bytes);
            }
        });
        let until = node.now + Duration::from_millis(200);
        let actions = run_lone(&mut node, until, |node, now| {
            let bytes = starting_cold_at(node, 3, 0x101);
            node.handle_message(now, 1, &bytes);
        });
        assert_eq!(node.role(), Role::Starting, "member 2 silent");
        assert!(
            actions.contains(&Action::Alarm(crate::node::Alarm::ColdStartHeld)),
            "{actions:?}"
        );
    }

    /// A group's starting node with state, waiting beside a backup in sync, asks the
    /// voters one round at a time: a round still open at its next decision (a probe
    /// timeout longer than the start-up wait) is not asked again. (Mutant
    /// `succession.rs:681:32` `||` → `&&` in `starting_vote_start`: a new round at each
    /// decision, its grants so far dropped; reached only when `probe_timeout_ms` is at
    /// least `startup_wait_ms`, as in no shipped profile. Schemata run of 64df4f8,
    /// 2026-11-27.)
    #[test]
    fn starting_group_with_state_one_round_at_a_time() {
        let mut node = lone(1, false, &[(2, 1, false), (3, 1, false)]);
        node.config.probe_timeout_ms = 50;
        node.origin = Epoch(0x101);
        node.state_epoch = Epoch(0x101);
        node.frame_last_run = 10;
        let until = node.now + node.config.startup_wait() * 2 + Duration::from_millis(5);
        let actions = run_steps(
            &mut node,
            until,
            |node, now| {
                let backup = to(
                    node,
                    3,
                    WireRole::Backup,
                    WireSync::InSync,
                    0x101,
                    0x101,
                    lone_heartbeat(node),
                );
                node.handle_message(now, 1, &backup);
            },
            false,
        );
        let rounds = actions
            .iter()
            .filter(|a| matches!(a, Action::Transmit { link: 1, .. }))
            .filter(|a| requests_in(core::slice::from_ref(a)).len() == 1)
            .count();
        assert_eq!(rounds, 1, "{:x?}", requests_in(&actions));
        assert_eq!(node.role(), Role::Starting);
    }
}
