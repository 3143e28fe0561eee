//! A model of the tank process, for closing the loop in simulations: the actuator
//! commands the nodes emit change the sensor values of the next frames.
//!
//! A pump draws from a supply tank into the process tank; consumers draw from the
//! process tank (the demand). Integer arithmetic in microlitres and micrometres, so a
//! simulation with the same commands gives the same frames on every machine.
//!
//! ```
//! use twinloop_demo::plant::{Plant, PlantParams};
//! use twinloop_demo::layout::ActuatorCommand;
//!
//! let mut plant = Plant::new(PlantParams::default());
//! let payload = plant.inputs().encode(); // frame 1's input payload
//! plant.apply(&ActuatorCommand { flags: 1, pump_speed_permille: 500, ..Default::default() });
//! plant.advance(10); // 10 ms later
//! assert!(plant.inputs().pump_flow_ml_per_s > 0);
//! # let _ = payload;
//! ```

use crate::layout::{di, flag, ActuatorCommand, TankInputs};
use serde::{Deserialize, Serialize};

/// The plant's physical parameters and initial conditions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlantParams {
    /// Cross-section of the process tank, in square centimetres (1 000 = 0.1 m²: then
    /// 1 ml raises the level by 10 µm).
    pub area_cm2: u32,
    /// Height of the process tank: above it, the tank overflows.
    pub height_um: u32,
    /// Level at start.
    pub level_initial_um: u32,
    /// Level at which the independent high-high switch closes.
    pub high_high_switch_um: u32,
    /// Pump flow at full speed.
    pub pump_flow_max_ml_per_s: u32,
    /// Outflow to the consumers at start.
    pub demand_ml_per_s: u32,
    /// Volume of the supply tank at start (and its capacity).
    pub supply_ml: u64,
    /// Inflow that refills the supply tank.
    pub supply_refill_ml_per_s: u32,
    /// Supply volume below which the suction low switch closes.
    pub supply_low_ml: u64,
}

impl Default for PlantParams {
    fn default() -> Self {
        PlantParams {
            area_cm2: 1_000,
            height_um: 2_000_000,
            level_initial_um: 500_000,
            high_high_switch_um: 1_900_000,
            pump_flow_max_ml_per_s: 5_000,
            demand_ml_per_s: 1_500,
            supply_ml: 5_000_000,
            supply_refill_ml_per_s: 1_000,
            supply_low_ml: 100_000,
        }
    }
}

/// The simulated process tank, pump and supply.
#[derive(Debug, Clone)]
pub struct Plant {
    params: PlantParams,
    /// Water in the process tank, in microlitres.
    volume_ul: u64,
    /// Water in the supply tank, in microlitres.
    supply_ul: u64,
    pump_run: bool,
    pump_speed_permille: u16,
    /// The flow of the last `advance`, as the flow meter reads it.
    pump_flow_ml_per_s: u32,
    demand_ml_per_s: u32,
    /// The operator panel's inputs a scenario sets. The mode selector stays in AUTO and
    /// the emergency stop circuit closed: no scenario changes them.
    ack: bool,
    setpoint_um: u32,
}

impl Plant {
    /// A plant in its initial conditions, in AUTO with a healthy emergency stop circuit.
    pub fn new(params: PlantParams) -> Self {
        let volume_ul = u64::from(params.level_initial_um) * u64::from(params.area_cm2) / 10;
        let supply_ul = params.supply_ml.saturating_mul(1000);
        Plant {
            volume_ul,
            supply_ul,
            pump_run: false,
            pump_speed_permille: 0,
            pump_flow_ml_per_s: 0,
            demand_ml_per_s: params.demand_ml_per_s,
            ack: false,
            setpoint_um: 0,
            params,
        }
    }

    /// Applies an actuator command (the drive and the contactor follow it at once).
    pub fn apply(&mut self, command: &ActuatorCommand) {
        self.pump_run = command.has(flag::PUMP_RUN);
        self.pump_speed_permille = command.pump_speed_permille.min(1000);
    }

    /// Whether the motor turns: commanded (the emergency stop circuit is always closed).
    fn motor_runs(&self) -> bool {
        self.pump_run
    }

    /// Lets `dt_ms` milliseconds pass.
    pub fn advance(&mut self, dt_ms: u64) {
        self.advance_us(dt_ms.saturating_mul(1000));
    }

    /// Lets `dt_us` microseconds pass (a cycle shorter than a millisecond, `cycle_us`):
    /// the same integers as [`Plant::advance`] for whole milliseconds; below, flows
    /// round down to whole microlitres per step.
    pub fn advance_us(&mut self, dt_us: u64) {
        let p = &self.params;
        // ml/s × µs = nl: a thousandth of the µl the volumes count in.
        let ul = |ml_per_s: u64| ml_per_s.saturating_mul(dt_us) / 1000;
        let mut pump_ul = if self.motor_runs() {
            ul(u64::from(p.pump_flow_max_ml_per_s) * u64::from(self.pump_speed_permille) / 1000)
        } else {
            0
        };
        // A dry supply delivers what it has.
        pump_ul = pump_ul.min(self.supply_ul);
        self.pump_flow_ml_per_s = pump_ul
            .saturating_mul(1000)
            .checked_div(dt_us)
            .map_or(0, |flow| flow.min(u64::from(u32::MAX)) as u32);
        self.supply_ul -= pump_ul;
        let capacity_ul = p.supply_ml.saturating_mul(1000);
        self.supply_ul = (self.supply_ul + ul(u64::from(p.supply_refill_ml_per_s))).min(capacity_ul);
        let demand_ul = ul(u64::from(self.demand_ml_per_s));
        let full_ul = u64::from(p.height_um) * u64::from(p.area_cm2) / 10;
        // What exceeds the tank's height overflows.
        self.volume_ul = (self.volume_ul + pump_ul).saturating_sub(demand_ul).min(full_ul);
    }

    /// The level in the process tank.
    pub fn level_um(&self) -> u32 {
        (self.volume_ul * 10 / u64::from(self.params.area_cm2.max(1))).min(u64::from(u32::MAX)) as u32
    }

    /// The supply tank's volume, in millilitres.
    pub fn supply_ml(&self) -> u64 {
        self.supply_ul / 1000
    }

    /// The sensor values and switches of this instant, as the next frame carries them.
    pub fn inputs(&self) -> TankInputs {
        let level_um = self.level_um();
        let mut digital = 0;
        let mut set = |bit, on| {
            if on {
                digital |= bit;
            }
        };
        set(di::PUMP_RUNNING, self.motor_runs());
        set(
            di::SUCTION_LOW,
            self.supply_ul < self.params.supply_low_ml.saturating_mul(1000),
        );
        set(di::LEVEL_HIGH_HIGH, level_um >= self.params.high_high_switch_um);
        set(di::ACK, self.ack);
        set(di::AUTO, true);
        set(di::ESTOP_OK, true);
        TankInputs {
            digital,
            level_um,
            pump_flow_ml_per_s: self.pump_flow_ml_per_s,
            setpoint_um: self.setpoint_um,
            demand_flow_ml_per_s: self.demand_ml_per_s,
        }
    }

    /// Holds the acknowledge button (true) or releases it (false).
    pub fn set_ack(&mut self, pressed: bool) {
        self.ack = pressed;
    }

    /// Sets the operator panel's level setpoint (0 = none).
    pub fn set_setpoint(&mut self, setpoint_um: u32) {
        self.setpoint_um = setpoint_um;
    }

    /// Empties the supply tank at once (a dry-run scenario).
    pub fn drain_supply(&mut self) {
        self.supply_ul = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tank::{TankApp, TankParams};
    use twinloop::app::{App, Frame, Outbox};

    /// Closes the loop between the program and the plant for `frames` cycles.
    fn closed_loop(app: &mut TankApp, plant: &mut Plant, first: u64, frames: u64) {
        let mut outbox = Outbox::new();
        for number in first..first + frames {
            let payload = plant.inputs().encode();
            outbox.clear();
            app.step(
                Frame {
                    number,
                    payload: &payload,
                },
                &mut outbox,
            );
            if let Ok(crate::layout::OutputMessage::Command(c)) =
                crate::layout::OutputMessage::decode(&outbox.as_slice()[0])
            {
                plant.apply(&c);
            }
            plant.advance_us(u64::from(app.params().cycle_us()));
        }
    }

    /// A cycle in µs (`cycle_us`): whole milliseconds give the integers `advance` gave,
    /// and ten 100 µs steps the one millisecond's volumes.
    #[test]
    fn plant_advance_us_matches_whole_milliseconds() {
        let running = || {
            let mut plant = Plant::new(PlantParams::default());
            plant.apply(&ActuatorCommand {
                flags: flag::PUMP_RUN,
                pump_speed_permille: 700,
                ..ActuatorCommand::default()
            });
            plant
        };
        let (mut by_ms, mut by_us, mut by_tenths) = (running(), running(), running());
        by_ms.advance(7);
        by_us.advance_us(7000);
        for _ in 0..70 {
            by_tenths.advance_us(100);
        }
        assert_eq!((by_ms.volume_ul, by_ms.supply_ul), (by_us.volume_ul, by_us.supply_ul));
        assert_eq!(by_ms.pump_flow_ml_per_s, by_us.pump_flow_ml_per_s);
        assert!(by_ms.volume_ul > 0);
        assert_eq!(by_tenths.volume_ul, by_ms.volume_ul);
        assert_eq!(by_tenths.pump_flow_ml_per_s, by_ms.pump_flow_ml_per_s);
    }

    #[test]
    fn plant_one_ml_is_ten_micrometres_in_a_tenth_square_metre() {
        let mut plant = Plant::new(PlantParams {
            demand_ml_per_s: 0,
            ..PlantParams::default()
        });
        plant.apply(&ActuatorCommand {
            flags: flag::PUMP_RUN,
            pump_speed_permille: 1000,
            ..ActuatorCommand::default()
        });
        plant.advance(1000);
        // 5 l in 0.1 m²: 50 mm.
        assert_eq!(plant.level_um(), 550_000);
        assert_eq!(plant.inputs().pump_flow_ml_per_s, 5_000);
    }

    #[test]
    fn plant_closed_loop_settles_at_setpoint() {
        let mut app = TankApp::new(TankParams::default());
        let mut plant = Plant::new(PlantParams::default());
        // 60 s of plant time.
        closed_loop(&mut app, &mut plant, 1, 6_000);
        let level = i64::from(plant.level_um());
        assert!(
            (level - 1_000_000).abs() < 20_000,
            "level {level} µm not near the 1 m setpoint"
        );
        assert_eq!(app.state().alarms_latched, 0);
        assert!(app.totalizer_ml() > 0);
    }

    #[test]
    fn plant_dry_supply_trips_the_pump() {
        let mut app = TankApp::new(TankParams::default());
        let mut plant = Plant::new(PlantParams {
            supply_refill_ml_per_s: 0,
            ..PlantParams::default()
        });
        closed_loop(&mut app, &mut plant, 1, 100);
        plant.drain_supply();
        closed_loop(&mut app, &mut plant, 101, 2);
        assert_ne!(app.state().alarms_latched & crate::tank::Alarm::DryRun.bit(), 0);
        assert!(!app.state().pump_run);
    }
}
