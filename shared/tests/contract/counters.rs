//! The statistics counters (`imghost::stats`), which are built from table operations: conditional
//! transactions, `ADD`, and the ranking index. Both families must count identically.

use imghost::media::Format;
use imghost::stats::{self, Change, Facts, Stats};
use imghost::store::{Cond, Table, TxOp};
use time::macros::datetime;
use time::{Duration as Days, OffsetDateTime};

use crate::is_condition_failed;

const NOW: OffsetDateTime = datetime!(2026-11-23 12:00 UTC);

fn jpeg(camera: Option<&str>, bytes: u64) -> Facts {
    Facts { format: Format::Jpeg, bytes, camera: camera.map(str::to_owned) }
}

async fn count(t: &dyn Table, change: Change<'_>, at: OffsetDateTime) {
    stats::transact_counted(t, vec![], change, at).await.unwrap();
}

async fn read(t: &dyn Table) -> Stats {
    stats::read(t, NOW.date()).await.unwrap()
}

fn cameras(s: &Stats) -> Vec<(&str, i64)> {
    s.top_cameras.iter().map(|c| (c.model.as_str(), c.count)).collect()
}

pub async fn counters_start_empty_with_thirty_zero_days(t: &dyn Table) {
    // Given no counters at all, when reading.
    let s = read(t).await;

    // Then everything is zero and the days are still listed.
    assert_eq!(s.most_popular_format, None);
    assert!(s.formats.is_empty() && s.top_cameras.is_empty());
    assert_eq!((s.cameras_unknown, s.totals.clone()), (0, Default::default()));
    assert_eq!(s.uploads_per_day.len(), 30);
    assert!(s.uploads_per_day.iter().all(|d| d.count == 0));
    assert_eq!(s.uploads_per_day.first().unwrap().date, "2026-10-25");
    assert_eq!(s.uploads_per_day.last().unwrap().date, "2026-11-23");
}

pub async fn counters_follow_adds_duplicates_and_removals(t: &dyn Table) {
    // Given three JPEGs (two from one camera, one unknown), a PNG and two duplicate uploads.
    let d70 = jpeg(Some("NIKON D70"), 1000);
    let unknown = jpeg(None, 10);
    let png = Facts { format: Format::Png, bytes: 500, camera: Some("Pixel 7".into()) };
    for f in [&d70, &d70, &unknown, &png] {
        count(t, Change::ImageAdded(f), NOW).await;
    }
    count(t, Change::DuplicateUpload, NOW).await;
    count(t, Change::DuplicateUpload, NOW).await;

    // Then the totals, formats and cameras say so.
    let s = read(t).await;
    assert_eq!(s.most_popular_format, Some("jpeg"));
    let formats: Vec<_> = s.formats.iter().map(|f| (f.format, f.count)).collect();
    assert_eq!(formats, [("jpeg", 3), ("png", 1)]);
    assert_eq!(cameras(&s), [("NIKON D70", 2), ("Pixel 7", 1)]);
    assert_eq!(s.cameras_unknown, 1);
    let t0 = &s.totals;
    assert_eq!((t0.images, t0.uploads, t0.bytes, t0.duplicates), (4, 6, 2510, 2));
    assert_eq!(s.uploads_per_day.last().unwrap().count, 6);

    // When one D70 image, the unknown one and the PNG are removed.
    for f in [&d70, &unknown, &png] {
        count(t, Change::ImageRemoved(f), NOW).await;
    }

    // Then stored-image counters go down, a model at zero leaves the ranking, and accepted
    // uploads (events that happened) stay counted.
    let s = read(t).await;
    let formats: Vec<_> = s.formats.iter().map(|f| (f.format, f.count)).collect();
    assert_eq!(formats, [("jpeg", 1)]);
    assert_eq!(cameras(&s), [("NIKON D70", 1)]);
    assert_eq!(s.cameras_unknown, 0);
    let t1 = &s.totals;
    assert_eq!((t1.images, t1.uploads, t1.bytes, t1.duplicates), (1, 6, 1000, 2));
    assert_eq!(s.uploads_per_day.last().unwrap().count, 6);
}

pub async fn counters_window_is_thirty_utc_days_ending_today(t: &dyn Table) {
    // Given uploads on days 0 (today), 1, 29 and 30 days ago, and one tomorrow.
    let cases: &[(i64, usize)] = &[(0, 3), (1, 1), (29, 2), (30, 5), (-1, 4)];
    for &(days_ago, n) in cases {
        for _ in 0..n {
            count(t, Change::DuplicateUpload, NOW - Days::days(days_ago)).await;
        }
    }
    // And one a second before today's UTC midnight, which belongs to yesterday.
    count(t, Change::DuplicateUpload, datetime!(2026-11-22 23:59:59 UTC)).await;

    // When reading for today.
    let s = read(t).await;

    // Then exactly the 30 days ending today are listed, oldest first, zero-filled.
    let days = &s.uploads_per_day;
    assert_eq!(days.len(), 30);
    let expect = |date: &str| days.iter().find(|d| d.date == date).map(|d| d.count);
    assert_eq!(expect("2026-11-23"), Some(3));
    assert_eq!(expect("2026-11-22"), Some(2));
    assert_eq!(expect("2026-10-25"), Some(2));
    assert_eq!(expect("2026-10-24"), None, "30 days ago is outside the window");
    assert_eq!(expect("2026-11-24"), None, "tomorrow is outside the window");
    assert_eq!(days.iter().map(|d| d.count).sum::<i64>(), 7);
    assert!(days.windows(2).all(|w| w[0].date < w[1].date));
    // Uploads outside the window still count in the totals.
    assert_eq!(s.totals.uploads, 16);
}

pub async fn counters_rank_at_most_ten_cameras_ties_by_name(t: &dyn Table) {
    // Given 13 models: "M00" with 3 images, "M12" with 2, and eleven with 1 each.
    let mut counts: Vec<(String, usize)> = (0..13).map(|i| (format!("M{i:02}"), 1)).collect();
    counts[0].1 = 3;
    counts[12].1 = 2;
    for (model, n) in &counts {
        for _ in 0..*n {
            count(t, Change::ImageAdded(&jpeg(Some(model), 1)), NOW).await;
        }
    }

    // When reading.
    let s = read(t).await;

    // Then the ten largest, most first, ties by model name.
    let want: Vec<(String, i64)> = ["M00", "M12", "M01", "M02", "M03", "M04", "M05", "M06", "M07", "M08"]
        .iter()
        .zip([3, 2, 1, 1, 1, 1, 1, 1, 1, 1])
        .map(|(m, c)| (m.to_string(), c))
        .collect();
    let got: Vec<(String, i64)> = cameras(&s).into_iter().map(|(m, c)| (m.to_owned(), c)).collect();
    assert_eq!(got, want);

    // When M00 loses all three images, then the next model moves up into the ten.
    for _ in 0..3 {
        count(t, Change::ImageRemoved(&jpeg(Some("M00"), 1)), NOW).await;
    }
    let s = read(t).await;
    let names: Vec<&str> = s.top_cameras.iter().map(|c| c.model.as_str()).collect();
    assert_eq!(names, ["M12", "M01", "M02", "M03", "M04", "M05", "M06", "M07", "M08", "M09"]);
}

pub async fn counters_concurrent_changes_of_one_camera_are_exact(t: &dyn Table) {
    // Given 20 images of one model and 5 of another added concurrently, and 4 of the first
    // removed while the adds run (their counters race on one item each).
    let a = jpeg(Some("Canon EOS 40D"), 7);
    let b = jpeg(Some("E950"), 3);
    count(t, Change::ImageAdded(&a), NOW).await;
    let adds = (0..19).map(|_| &a).chain((0..5).map(|_| &b)).map(|f| count(t, Change::ImageAdded(f), NOW));
    let removes = (0..4).map(|_| count(t, Change::ImageRemoved(&a), NOW));
    futures::future::join(futures::future::join_all(adds), futures::future::join_all(removes)).await;

    // Then every change counted exactly once.
    let s = read(t).await;
    assert_eq!(cameras(&s), [("Canon EOS 40D", 16), ("E950", 5)]);
    assert_eq!((s.totals.images, s.totals.bytes, s.totals.uploads), (21, 16 * 7 + 5 * 3, 25));
}

pub async fn counters_do_not_move_when_the_guarded_write_fails(t: &dyn Table) {
    // Given a write guarded by a condition that does not hold.
    let guarded = TxOp::Check { pk: "nothing".into(), sk: "here".into(), cond: Cond::Exists };
    let facts = jpeg(Some("NIKON D70"), 100);

    // When it is counted as an added image.
    let r = stats::transact_counted(t, vec![guarded], Change::ImageAdded(&facts), NOW).await;

    // Then its own failure is reported (index 0), and no counter moved.
    assert!(is_condition_failed(&r, Some(0)), "{r:?}");
    let s = read(t).await;
    assert_eq!((s.totals.images, s.totals.uploads), (0, 0));
    assert!(s.top_cameras.is_empty());
}
