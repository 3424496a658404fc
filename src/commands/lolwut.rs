//! LOLWUT: computer art and the server's version.
//!
//! `LOLWUT [VERSION v] [args]`. As in Redis 7.0, a version without a
//! drawing of its own (the default, 7) answers only the version line;
//! version 5 draws a grid of squares that fall into disorder row by row
//! (after Georg Nees' 1968 plotter piece "Schotter"), version 6 a city
//! skyline at night. Both are drawn on a pixel canvas printed with Braille
//! characters (2×4 dots per character), and both are different each time.

use std::f64::consts::PI;

use bytes::Bytes;
use rand::Rng;

use crate::commands::ctx::Ctx;
use crate::commands::spec::{cmd, CmdFlags as F, CommandSpec};
use crate::protocol::args::{eq_ic, int_arg};
use crate::protocol::{CmdError, CmdResult, Reply};
use crate::REDIS_VERSION;

pub const SPECS: &[CommandSpec] = &[cmd("lolwut", -1, F::READONLY.union(F::FAST), lolwut).doc(
    "server",
    "5.0.0",
    "Displays computer art and the Redis version",
)];

/// The largest canvas drawn, in pixels (one byte each).
const MAX_PIXELS: usize = 4 << 20;

/// A monochrome canvas of `w`×`h` pixels.
struct Canvas {
    w: usize,
    h: usize,
    px: Vec<bool>,
}

impl Canvas {
    fn new(w: usize, h: usize) -> Self {
        Canvas {
            w,
            h,
            px: vec![false; w * h],
        }
    }

    fn set(&mut self, x: i64, y: i64) {
        if x >= 0 && y >= 0 && (x as usize) < self.w && (y as usize) < self.h {
            self.px[y as usize * self.w + x as usize] = true;
        }
    }

    fn get(&self, x: usize, y: usize) -> bool {
        x < self.w && y < self.h && self.px[y * self.w + x]
    }

    /// A straight line (Bresenham).
    fn line(&mut self, (mut x0, mut y0): (i64, i64), (x1, y1): (i64, i64)) {
        let dx = (x1 - x0).abs();
        let dy = -(y1 - y0).abs();
        let sx = if x0 < x1 { 1 } else { -1 };
        let sy = if y0 < y1 { 1 } else { -1 };
        let mut err = dx + dy;
        loop {
            self.set(x0, y0);
            if x0 == x1 && y0 == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x0 += sx;
            }
            if e2 <= dx {
                err += dx;
                y0 += sy;
            }
        }
    }

    /// The canvas as lines of Braille characters: each character shows a
    /// 2-wide, 4-high block of pixels (U+2800 plus one bit per dot).
    fn render(&self) -> String {
        // Dot bits, indexed [row][column] within the 2×4 block.
        const BITS: [[u32; 2]; 4] = [[0x01, 0x08], [0x02, 0x10], [0x04, 0x20], [0x40, 0x80]];
        let mut out = String::new();
        for by in (0..self.h).step_by(4) {
            for bx in (0..self.w).step_by(2) {
                let mut code = 0x2800u32;
                for (dy, row) in BITS.iter().enumerate() {
                    for (dx, bit) in row.iter().enumerate() {
                        if self.get(bx + dx, by + dy) {
                            code |= bit;
                        }
                    }
                }
                out.push(char::from_u32(code).unwrap_or(' '));
            }
            out.push('\n');
        }
        out
    }
}

/// An integer argument clamped to `lo..=hi`, or `default` when absent.
fn clamped(argv: &[Bytes], i: usize, default: i64, lo: i64, hi: i64) -> Result<i64, CmdError> {
    match argv.get(i) {
        None => Ok(default),
        Some(a) => Ok(int_arg(a)?.clamp(lo, hi)),
    }
}

/// ```text
/// LOLWUT [VERSION version] [arguments of that version]
/// ```
fn lolwut(_ctx: &mut Ctx<'_>, argv: &[Bytes]) -> CmdResult {
    let (version, first) = if argv.len() >= 3 && eq_ic(&argv[1], "VERSION") {
        (int_arg(&argv[2])?, 3)
    } else {
        (7, 1)
    };
    let args = &argv[first..];
    let art = match version {
        5 => schotter(
            clamped(args, 0, 66, 1, 1000)? as usize,
            clamped(args, 1, 8, 1, 200)? as usize,
            clamped(args, 2, 12, 1, 200)? as usize,
        ),
        6 => skyline(
            clamped(args, 0, 80, 1, 1000)? as usize,
            clamped(args, 1, 20, 1, 1000)? as usize,
        ),
        _ => String::new(),
    };
    let text = format!("{art}Redis ver. {REDIS_VERSION}\n");
    Ok(Reply::Verbatim(*b"txt", Bytes::from(text)))
}

/// `cols` characters wide; `per_row`×`per_col` squares, each row turned
/// and shifted a little more at random than the one above it.
fn schotter(cols: usize, per_row: usize, per_col: usize) -> String {
    let width = cols * 2;
    let side = (width / per_row).max(1);
    // At the largest arguments (one 2000-pixel square per row, 200 rows)
    // the canvas would take 800 MB; rows past 4M pixels are left out.
    let per_col = per_col.min((MAX_PIXELS / width / side).max(1));
    let height = side * per_col;
    let mut canvas = Canvas::new(width, height);
    let mut rng = rand::thread_rng();
    let half = side as f64 / 2.0;
    for row in 0..per_col {
        // Disorder grows linearly from the first row to the last.
        let disorder = row as f64 / per_col as f64;
        for col in 0..per_row {
            let cx = col as f64 * side as f64 + half;
            let cy = row as f64 * side as f64 + half;
            let angle = rng.gen_range(-1.0..=1.0) * disorder * PI / 4.0;
            let dx = rng.gen_range(-1.0..=1.0) * disorder * half;
            let dy = rng.gen_range(-1.0..=1.0) * disorder * half;
            // Corners 0.9 half-sides from the centre along each axis.
            let d = half * 0.9 * std::f64::consts::SQRT_2;
            let corners: [(i64, i64); 4] = std::array::from_fn(|k| {
                let a = angle + PI / 4.0 + k as f64 * PI / 2.0;
                (
                    (cx + dx + d * a.cos()).round() as i64,
                    (cy + dy + d * a.sin()).round() as i64,
                )
            });
            for k in 0..4 {
                canvas.line(corners[k], corners[(k + 1) % 4]);
            }
        }
    }
    let mut out = canvas.render();
    out.push_str("\nSquares falling into disorder, after Georg Nees' \"Schotter\" (1968). ");
    out
}

/// `cols`×`rows` characters: buildings of random heights and widths along
/// a street, each with a random pattern of lit windows.
fn skyline(cols: usize, rows: usize) -> String {
    let width = cols * 2;
    let height = rows * 4;
    let mut canvas = Canvas::new(width, height);
    let mut rng = rand::thread_rng();
    let ground = height as i64 - 1;
    canvas.line((0, ground), (width as i64 - 1, ground));
    let mut x = 0usize;
    while x < width {
        let w = rng.gen_range(6..=16usize).min(width - x);
        let top = ground - rng.gen_range((height / 4).max(1)..=(height * 7 / 8).max(2)) as i64;
        let (l, r) = (x as i64, (x + w) as i64 - 1);
        canvas.line((l, ground), (l, top));
        canvas.line((l, top), (r, top));
        canvas.line((r, top), (r, ground));
        // Windows: two-pixel squares on a 4-pixel grid, lit at random.
        let mut wy = top + 3;
        while wy + 2 < ground {
            let mut wx = l + 2;
            while wx + 2 < r {
                if rng.gen_bool(0.5) {
                    canvas.set(wx, wy);
                    canvas.set(wx + 1, wy);
                    canvas.set(wx, wy + 1);
                    canvas.set(wx + 1, wy + 1);
                }
                wx += 4;
            }
            wy += 4;
        }
        // A gap between some buildings.
        x += w + rng.gen_range(0..=2usize);
    }
    let mut out = canvas.render();
    out.push_str("\nA city that never sleeps, for those who keep servers running at night. ");
    out
}
