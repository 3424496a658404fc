//! HyperLogLog commands through the real server: replies and errors, the
//! exact Redis byte representation (differential GET against redis-server),
//! values moved between the two servers in both directions, and PFCOUNT
//! equality for fixed and random inputs.

mod common;
use common::diff::{same_replies, script, Conn, RedisRef};
use common::{resp, TestServer};

/// The payload of a raw bulk reply.
fn bulk(reply: &[u8]) -> Vec<u8> {
    assert_eq!(reply[0], b'$', "{:?}", String::from_utf8_lossy(reply));
    let nl = reply.iter().position(|&b| b == b'\n').expect("line");
    reply[nl + 1..reply.len() - 2].to_vec()
}

#[tokio::test]
async fn pfadd_pfcount_basics() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    c.expect(&resp(&[b"PFADD", b"h", b"a", b"b", b"c"]), b":1\r\n")
        .await;
    c.expect(&resp(&[b"PFADD", b"h", b"a"]), b":0\r\n").await;
    c.expect(&resp(&[b"PFADD", b"h"]), b":0\r\n").await;
    c.expect(&resp(&[b"PFCOUNT", b"h"]), b":3\r\n").await;
    c.expect(&resp(&[b"PFADD", b"e"]), b":1\r\n").await;
    c.expect(&resp(&[b"PFCOUNT", b"e"]), b":0\r\n").await;
    c.expect(&resp(&[b"PFCOUNT", b"nokey"]), b":0\r\n").await;
    c.expect(&resp(&[b"PFCOUNT", b"h", b"e", b"nokey"]), b":3\r\n")
        .await;
    c.expect(&resp(&[b"TYPE", b"h"]), b"+string\r\n").await;
    c.expect(
        &resp(&[b"GETRANGE", b"h", b"0", b"4"]),
        b"$5\r\nHYLL\x01\r\n",
    )
    .await;
    c.expect(&resp(&[b"PFDEBUG", b"ENCODING", b"h"]), b"+sparse\r\n")
        .await;
    c.expect(&resp(&[b"PFMERGE", b"m", b"h", b"nokey"]), b"+OK\r\n")
        .await;
    c.expect(&resp(&[b"PFCOUNT", b"m"]), b":3\r\n").await;
    c.expect(&resp(&[b"PFDEBUG", b"TODENSE", b"m"]), b":1\r\n")
        .await;
    c.expect(&resp(&[b"PFDEBUG", b"TODENSE", b"m"]), b":0\r\n")
        .await;
    c.expect(&resp(&[b"PFDEBUG", b"ENCODING", b"m"]), b"+dense\r\n")
        .await;
    c.expect(&resp(&[b"STRLEN", b"m"]), b":12304\r\n").await;
    c.expect(&resp(&[b"PFCOUNT", b"m"]), b":3\r\n").await;
    c.expect(
        &resp(&[b"PFDEBUG", b"DECODE", b"m"]),
        b"-ERR HLL encoding is not sparse\r\n",
    )
    .await;
    c.expect(&resp(&[b"PFDEBUG", b"DECODE", b"e"]), b"$7\r\nZ:16384\r\n")
        .await;
    c.expect(
        &resp(&[b"PFDEBUG", b"GETREG", b"nokey"]),
        b"-ERR The specified key does not exist\r\n",
    )
    .await;
    c.expect(
        &resp(&[b"PFDEBUG", b"FOO", b"h"]),
        b"-ERR Unknown PFDEBUG subcommand 'FOO'\r\n",
    )
    .await;
    c.send(&resp(&[b"PFDEBUG", b"GETREG", b"h"])).await;
    let head = c.read_until(b"\r\n").await;
    assert!(head.starts_with(b"*16384\r\n"));
}

#[tokio::test]
async fn invalid_and_corrupted_values() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    let not_hll = b"-WRONGTYPE Key is not a valid HyperLogLog string value.\r\n";
    let corrupt = b"-INVALIDOBJ Corrupted HLL object detected\r\n";
    c.expect(&resp(&[b"SET", b"s", b"hello"]), b"+OK\r\n").await;
    c.expect(&resp(&[b"PFADD", b"s", b"a"]), not_hll).await;
    c.expect(&resp(&[b"PFCOUNT", b"s"]), not_hll).await;
    c.expect(&resp(&[b"PFCOUNT", b"s", b"x"]), not_hll).await;
    c.expect(&resp(&[b"PFMERGE", b"d", b"s"]), not_hll).await;
    c.expect(&resp(&[b"PFDEBUG", b"ENCODING", b"s"]), not_hll)
        .await;
    c.expect(&resp(&[b"SET", b"i", b"123"]), b"+OK\r\n").await;
    c.expect(&resp(&[b"PFADD", b"i", b"a"]), not_hll).await;
    // Unknown encoding byte, and a dense HLL of the wrong size.
    c.expect(
        &resp(&[
            b"SET",
            b"u",
            b"HYLL\x02\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
        ]),
        b"+OK\r\n",
    )
    .await;
    c.expect(&resp(&[b"PFCOUNT", b"u"]), not_hll).await;
    c.expect(
        &resp(&[
            b"SET",
            b"u",
            b"HYLL\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
        ]),
        b"+OK\r\n",
    )
    .await;
    c.expect(&resp(&[b"PFCOUNT", b"u"]), not_hll).await;
    c.expect(&resp(&[b"LPUSH", b"l", b"a"]), b":1\r\n").await;
    let wt = b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";
    c.expect(&resp(&[b"PFADD", b"l", b"a"]), wt).await;
    c.expect(&resp(&[b"PFCOUNT", b"l", b"x"]), wt).await;
    // A sparse stream that covers too few registers.
    let mut v = b"HYLL\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80".to_vec();
    v.extend_from_slice(b"\x40\x10");
    c.expect(&resp(&[b"SET", b"c", &v]), b"+OK\r\n").await;
    c.expect(&resp(&[b"PFCOUNT", b"c"]), corrupt).await;
    c.expect(&resp(&[b"PFCOUNT", b"c", b"x"]), corrupt).await;
    c.expect(&resp(&[b"PFMERGE", b"d", b"c"]), corrupt).await;
    c.expect(&resp(&[b"PFDEBUG", b"TODENSE", b"c"]), corrupt)
        .await;
    // Garbage after the header never crashes the server.
    let mut raw = Conn::connect(srv.addr.port()).await;
    for junk in [
        &b"\x40"[..],
        b"\xff\xff\xff",
        b"\x00",
        b"\x7f\xff\x7f\xff\x7f\xff",
    ] {
        let mut v = b"HYLL\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80".to_vec();
        v.extend_from_slice(junk);
        raw.call(&[b"SET", b"g", &v]).await;
        for cmd in [
            &[&b"PFADD"[..], b"g", b"x", b"y", b"z"][..],
            &[b"PFCOUNT", b"g"],
            &[b"PFCOUNT", b"g", b"g"],
            &[b"PFMERGE", b"g2", b"g"],
            &[b"PFDEBUG", b"DECODE", b"g"],
            &[b"PFDEBUG", b"GETREG", b"g"],
        ] {
            raw.call(cmd).await;
        }
    }
    c.expect(&resp(&[b"PING"]), b"+PONG\r\n").await;
}

/// The cached cardinality is written back by a single-key PFCOUNT (which
/// therefore counts as a write for WATCH), not by multi-key PFCOUNT or by a
/// PFADD that changes nothing.
#[tokio::test]
async fn cache_and_watch() {
    let srv = TestServer::start();
    let mut a = srv.raw().await;
    let mut b = srv.raw().await;
    a.expect(&resp(&[b"PFADD", b"h", b"a", b"b"]), b":1\r\n")
        .await;
    a.expect(&resp(&[b"GETRANGE", b"h", b"15", b"15"]), b"$1\r\n\x80\r\n")
        .await;
    a.expect(&resp(&[b"PFCOUNT", b"h", b"x"]), b":2\r\n").await;
    a.expect(&resp(&[b"GETRANGE", b"h", b"15", b"15"]), b"$1\r\n\x80\r\n")
        .await;
    a.expect(&resp(&[b"PFCOUNT", b"h"]), b":2\r\n").await;
    a.expect(
        &resp(&[b"GETRANGE", b"h", b"8", b"15"]),
        b"$8\r\n\x02\x00\x00\x00\x00\x00\x00\x00\r\n",
    )
    .await;
    a.expect(&resp(&[b"WATCH", b"h"]), b"+OK\r\n").await;
    b.expect(&resp(&[b"PFADD", b"h", b"a"]), b":0\r\n").await;
    b.expect(&resp(&[b"PFCOUNT", b"h"]), b":2\r\n").await;
    b.expect(&resp(&[b"PFCOUNT", b"h", b"x"]), b":2\r\n").await;
    a.expect(&resp(&[b"MULTI"]), b"+OK\r\n").await;
    a.expect(&resp(&[b"PING"]), b"+QUEUED\r\n").await;
    a.expect(&resp(&[b"EXEC"]), b"*1\r\n+PONG\r\n").await;
    a.expect(&resp(&[b"WATCH", b"h"]), b"+OK\r\n").await;
    b.expect(&resp(&[b"PFADD", b"h", b"c"]), b":1\r\n").await;
    a.expect(&resp(&[b"MULTI"]), b"+OK\r\n").await;
    a.expect(&resp(&[b"PING"]), b"+QUEUED\r\n").await;
    a.expect(&resp(&[b"EXEC"]), b"*-1\r\n").await;
}

/// Exact PFCOUNT values redis-server 7.0 gives for `e0`..`e{n-1}`.
#[tokio::test]
async fn pfcount_matches_redis_for_fixed_inputs() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    for (n, want, enc) in [
        (1u32, 1u64, "sparse"),
        (10, 10, "sparse"),
        (100, 100, "sparse"),
        (1000, 1008, "sparse"),
        (10000, 9973, "dense"),
        (100000, 100853, "dense"),
    ] {
        let key = format!("fx{n}");
        let mut i = 0;
        while i < n {
            let mut args: Vec<Vec<u8>> = vec![b"PFADD".to_vec(), key.clone().into_bytes()];
            args.extend((i..n.min(i + 1000)).map(|j| format!("e{j}").into_bytes()));
            let refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
            c.send(&resp(&refs)).await;
            let _ = c.read_until(b"\r\n").await;
            i += 1000;
        }
        c.expect(
            &resp(&[b"PFCOUNT", key.as_bytes()]),
            format!(":{want}\r\n").as_bytes(),
        )
        .await;
        c.expect(
            &resp(&[b"PFDEBUG", b"ENCODING", key.as_bytes()]),
            format!("+{enc}\r\n").as_bytes(),
        )
        .await;
    }
    c.expect(
        &resp(&[b"PFCOUNT", b"fx10", b"fx100", b"fx1000"]),
        b":1008\r\n",
    )
    .await;
}

#[tokio::test]
async fn pfselftest_passes() {
    let srv = TestServer::start();
    let mut c = srv.raw().await;
    c.expect(&resp(&[b"PFSELFTEST"]), b"+OK\r\n").await;
}

#[tokio::test]
async fn differential_script() {
    let srv = TestServer::start();
    let s = script(
        r#"
flushall
pfadd h a b c d e f g
get h
pfcount h
get h
pfadd h a
pfadd h
pfadd h2
get h2
pfcount h2
pfdebug encoding h
pfdebug decode h
pfadd big e0 e1 e2 e3 e4 e5 e6
get big
pfcount big
pfdebug encoding big
pfadd big e7 e8 e9 e10 e11 e12 e13
pfadd big e14 e15 e16 e17 e18 e19 e20
pfadd big e21 e22 e23 e24 e25 e26 e27
pfadd big e28 e29 e30 e31 e32 e33 e34
pfadd big e35 e36 e37 e38 e39 e40 e41
pfadd big e42 e43 e44 e45 e46 e47 e48
pfadd big e49 e50 e51 e52 e53 e54 e55
pfadd big e56 e57 e58 e59 e60 e61 e62
pfadd big e63 e64 e65 e66 e67 e68 e69
pfadd big e70 e71 e72 e73 e74 e75 e76
pfadd big e77 e78 e79 e80 e81 e82 e83
pfadd big e84 e85 e86 e87 e88 e89 e90
pfadd big e91 e92 e93 e94 e95 e96 e97
pfadd big e98 e99 e100 e101 e102 e103 e104
pfadd big e105 e106 e107 e108 e109 e110 e111
pfadd big e112 e113 e114 e115 e116 e117 e118
pfadd big e119 e120 e121 e122 e123 e124 e125
pfadd big e126 e127 e128 e129 e130 e131 e132
pfadd big e133 e134 e135 e136 e137 e138 e139
pfadd big e140 e141 e142 e143 e144 e145 e146
pfadd big e147 e148 e149 e150 e151 e152 e153
pfadd big e154 e155 e156 e157 e158 e159 e160
pfadd big e161 e162 e163 e164 e165 e166 e167
pfadd big e168 e169 e170 e171 e172 e173 e174
pfadd big e175 e176 e177 e178 e179 e180 e181
pfadd big e182 e183 e184 e185 e186 e187 e188
pfadd big e189 e190 e191 e192 e193 e194 e195
pfadd big e196 e197 e198 e199 e200 e201 e202
pfadd big e203 e204 e205 e206 e207 e208 e209
pfadd big e210 e211 e212 e213 e214 e215 e216
get big
pfcount big
pfdebug encoding big
pfadd big e217 e218 e219 e220 e221 e222 e223
pfadd big e224 e225 e226 e227 e228 e229 e230
pfadd big e231 e232 e233 e234 e235 e236 e237
pfadd big e238 e239 e240 e241 e242 e243 e244
pfadd big e245 e246 e247 e248 e249 e250 e251
pfadd big e252 e253 e254 e255 e256 e257 e258
pfadd big e259 e260 e261 e262 e263 e264 e265
pfadd big e266 e267 e268 e269 e270 e271 e272
pfadd big e273 e274 e275 e276 e277 e278 e279
pfadd big e280 e281 e282 e283 e284 e285 e286
pfadd big e287 e288 e289 e290 e291 e292 e293
pfadd big e294 e295 e296 e297 e298 e299 e300
pfadd big e301 e302 e303 e304 e305 e306 e307
pfadd big e308 e309 e310 e311 e312 e313 e314
pfadd big e315 e316 e317 e318 e319 e320 e321
pfadd big e322 e323 e324 e325 e326 e327 e328
pfadd big e329 e330 e331 e332 e333 e334 e335
pfadd big e336 e337 e338 e339 e340 e341 e342
pfadd big e343 e344 e345 e346 e347 e348 e349
pfadd big e350 e351 e352 e353 e354 e355 e356
pfadd big e357 e358 e359 e360 e361 e362 e363
pfadd big e364 e365 e366 e367 e368 e369 e370
pfadd big e371 e372 e373 e374 e375 e376 e377
pfadd big e378 e379 e380 e381 e382 e383 e384
pfadd big e385 e386 e387 e388 e389 e390 e391
pfadd big e392 e393 e394 e395 e396 e397 e398
pfadd big e399 e400 e401 e402 e403 e404 e405
pfadd big e406 e407 e408 e409 e410 e411 e412
pfadd big e413 e414 e415 e416 e417 e418 e419
pfadd big e420 e421 e422 e423 e424 e425 e426
get big
pfcount big
pfdebug encoding big
pfadd big e427 e428 e429 e430 e431 e432 e433
pfadd big e434 e435 e436 e437 e438 e439 e440
pfadd big e441 e442 e443 e444 e445 e446 e447
pfadd big e448 e449 e450 e451 e452 e453 e454
pfadd big e455 e456 e457 e458 e459 e460 e461
pfadd big e462 e463 e464 e465 e466 e467 e468
pfadd big e469 e470 e471 e472 e473 e474 e475
pfadd big e476 e477 e478 e479 e480 e481 e482
pfadd big e483 e484 e485 e486 e487 e488 e489
pfadd big e490 e491 e492 e493 e494 e495 e496
pfadd big e497 e498 e499 e500 e501 e502 e503
pfadd big e504 e505 e506 e507 e508 e509 e510
pfadd big e511 e512 e513 e514 e515 e516 e517
pfadd big e518 e519 e520 e521 e522 e523 e524
pfadd big e525 e526 e527 e528 e529 e530 e531
pfadd big e532 e533 e534 e535 e536 e537 e538
pfadd big e539 e540 e541 e542 e543 e544 e545
pfadd big e546 e547 e548 e549 e550 e551 e552
pfadd big e553 e554 e555 e556 e557 e558 e559
pfadd big e560 e561 e562 e563 e564 e565 e566
pfadd big e567 e568 e569 e570 e571 e572 e573
pfadd big e574 e575 e576 e577 e578 e579 e580
pfadd big e581 e582 e583 e584 e585 e586 e587
pfadd big e588 e589 e590 e591 e592 e593 e594
pfadd big e595 e596 e597 e598 e599 e600 e601
pfadd big e602 e603 e604 e605 e606 e607 e608
pfadd big e609 e610 e611 e612 e613 e614 e615
pfadd big e616 e617 e618 e619 e620 e621 e622
pfadd big e623 e624 e625 e626 e627 e628 e629
pfadd big e630 e631 e632 e633 e634 e635 e636
get big
pfcount big
pfdebug encoding big
pfadd big e637 e638 e639 e640 e641 e642 e643
pfadd big e644 e645 e646 e647 e648 e649 e650
pfadd big e651 e652 e653 e654 e655 e656 e657
pfadd big e658 e659 e660 e661 e662 e663 e664
pfadd big e665 e666 e667 e668 e669 e670 e671
pfadd big e672 e673 e674 e675 e676 e677 e678
pfadd big e679 e680 e681 e682 e683 e684 e685
pfadd big e686 e687 e688 e689 e690 e691 e692
pfadd big e693 e694 e695 e696 e697 e698 e699
pfadd big e700 e701 e702 e703 e704 e705 e706
pfadd big e707 e708 e709 e710 e711 e712 e713
pfadd big e714 e715 e716 e717 e718 e719 e720
pfadd big e721 e722 e723 e724 e725 e726 e727
pfadd big e728 e729 e730 e731 e732 e733 e734
pfadd big e735 e736 e737 e738 e739 e740 e741
pfadd big e742 e743 e744 e745 e746 e747 e748
pfadd big e749 e750 e751 e752 e753 e754 e755
pfadd big e756 e757 e758 e759 e760 e761 e762
pfadd big e763 e764 e765 e766 e767 e768 e769
pfadd big e770 e771 e772 e773 e774 e775 e776
pfadd big e777 e778 e779 e780 e781 e782 e783
pfadd big e784 e785 e786 e787 e788 e789 e790
pfadd big e791 e792 e793 e794 e795 e796 e797
pfadd big e798 e799 e800 e801 e802 e803 e804
pfadd big e805 e806 e807 e808 e809 e810 e811
pfadd big e812 e813 e814 e815 e816 e817 e818
pfadd big e819 e820 e821 e822 e823 e824 e825
pfadd big e826 e827 e828 e829 e830 e831 e832
pfadd big e833 e834 e835 e836 e837 e838 e839
pfadd big e840 e841 e842 e843 e844 e845 e846
get big
pfcount big
pfdebug encoding big
pfadd big e847 e848 e849 e850 e851 e852 e853
pfadd big e854 e855 e856 e857 e858 e859 e860
pfadd big e861 e862 e863 e864 e865 e866 e867
pfadd big e868 e869 e870 e871 e872 e873 e874
pfadd big e875 e876 e877 e878 e879 e880 e881
pfadd big e882 e883 e884 e885 e886 e887 e888
pfadd big e889 e890 e891 e892 e893 e894 e895
pfadd big e896 e897 e898 e899 e900 e901 e902
pfadd big e903 e904 e905 e906 e907 e908 e909
pfadd big e910 e911 e912 e913 e914 e915 e916
pfadd big e917 e918 e919 e920 e921 e922 e923
pfadd big e924 e925 e926 e927 e928 e929 e930
pfadd big e931 e932 e933 e934 e935 e936 e937
pfadd big e938 e939 e940 e941 e942 e943 e944
pfadd big e945 e946 e947 e948 e949 e950 e951
pfadd big e952 e953 e954 e955 e956 e957 e958
pfadd big e959 e960 e961 e962 e963 e964 e965
pfadd big e966 e967 e968 e969 e970 e971 e972
pfadd big e973 e974 e975 e976 e977 e978 e979
pfadd big e980 e981 e982 e983 e984 e985 e986
pfadd big e987 e988 e989 e990 e991 e992 e993
pfadd big e994 e995 e996 e997 e998 e999 e1000
pfadd big e1001 e1002 e1003 e1004 e1005 e1006 e1007
pfadd big e1008 e1009 e1010 e1011 e1012 e1013 e1014
pfadd big e1015 e1016 e1017 e1018 e1019 e1020 e1021
pfadd big e1022 e1023 e1024 e1025 e1026 e1027 e1028
pfadd big e1029 e1030 e1031 e1032 e1033 e1034 e1035
pfadd big e1036 e1037 e1038 e1039 e1040 e1041 e1042
pfadd big e1043 e1044 e1045 e1046 e1047 e1048 e1049
pfadd big e1050 e1051 e1052 e1053 e1054 e1055 e1056
get big
pfcount big
pfdebug encoding big
pfadd big e1057 e1058 e1059 e1060 e1061 e1062 e1063
pfadd big e1064 e1065 e1066 e1067 e1068 e1069 e1070
pfadd big e1071 e1072 e1073 e1074 e1075 e1076 e1077
pfadd big e1078 e1079 e1080 e1081 e1082 e1083 e1084
pfadd big e1085 e1086 e1087 e1088 e1089 e1090 e1091
pfadd big e1092 e1093 e1094 e1095 e1096 e1097 e1098
pfadd big e1099 e1100 e1101 e1102 e1103 e1104 e1105
pfadd big e1106 e1107 e1108 e1109 e1110 e1111 e1112
pfadd big e1113 e1114 e1115 e1116 e1117 e1118 e1119
pfadd big e1120 e1121 e1122 e1123 e1124 e1125 e1126
pfadd big e1127 e1128 e1129 e1130 e1131 e1132 e1133
pfadd big e1134 e1135 e1136 e1137 e1138 e1139 e1140
pfadd big e1141 e1142 e1143 e1144 e1145 e1146 e1147
pfadd big e1148 e1149 e1150 e1151 e1152 e1153 e1154
pfadd big e1155 e1156 e1157 e1158 e1159 e1160 e1161
pfadd big e1162 e1163 e1164 e1165 e1166 e1167 e1168
pfadd big e1169 e1170 e1171 e1172 e1173 e1174 e1175
pfadd big e1176 e1177 e1178 e1179 e1180 e1181 e1182
pfadd big e1183 e1184 e1185 e1186 e1187 e1188 e1189
pfadd big e1190 e1191 e1192 e1193 e1194 e1195 e1196
pfadd big e1197 e1198 e1199 e1200 e1201 e1202 e1203
pfadd big e1204 e1205 e1206 e1207 e1208 e1209 e1210
pfadd big e1211 e1212 e1213 e1214 e1215 e1216 e1217
pfadd big e1218 e1219 e1220 e1221 e1222 e1223 e1224
pfadd big e1225 e1226 e1227 e1228 e1229 e1230 e1231
pfadd big e1232 e1233 e1234 e1235 e1236 e1237 e1238
pfadd big e1239 e1240 e1241 e1242 e1243 e1244 e1245
pfadd big e1246 e1247 e1248 e1249 e1250 e1251 e1252
pfadd big e1253 e1254 e1255 e1256 e1257 e1258 e1259
pfadd big e1260 e1261 e1262 e1263 e1264 e1265 e1266
get big
pfcount big
pfdebug encoding big
pfadd big e1267 e1268 e1269 e1270 e1271 e1272 e1273
pfadd big e1274 e1275 e1276 e1277 e1278 e1279 e1280
pfadd big e1281 e1282 e1283 e1284 e1285 e1286 e1287
pfadd big e1288 e1289 e1290 e1291 e1292 e1293 e1294
pfadd big e1295 e1296 e1297 e1298 e1299 e1300 e1301
pfadd big e1302 e1303 e1304 e1305 e1306 e1307 e1308
pfadd big e1309 e1310 e1311 e1312 e1313 e1314 e1315
pfadd big e1316 e1317 e1318 e1319 e1320 e1321 e1322
pfadd big e1323 e1324 e1325 e1326 e1327 e1328 e1329
pfadd big e1330 e1331 e1332 e1333 e1334 e1335 e1336
pfadd big e1337 e1338 e1339 e1340 e1341 e1342 e1343
pfadd big e1344 e1345 e1346 e1347 e1348 e1349 e1350
pfadd big e1351 e1352 e1353 e1354 e1355 e1356 e1357
pfadd big e1358 e1359 e1360 e1361 e1362 e1363 e1364
pfadd big e1365 e1366 e1367 e1368 e1369 e1370 e1371
pfadd big e1372 e1373 e1374 e1375 e1376 e1377 e1378
pfadd big e1379 e1380 e1381 e1382 e1383 e1384 e1385
pfadd big e1386 e1387 e1388 e1389 e1390 e1391 e1392
pfadd big e1393 e1394 e1395 e1396 e1397 e1398 e1399
pfadd big e1400 e1401 e1402 e1403 e1404 e1405 e1406
pfadd big e1407 e1408 e1409 e1410 e1411 e1412 e1413
pfadd big e1414 e1415 e1416 e1417 e1418 e1419 e1420
pfadd big e1421 e1422 e1423 e1424 e1425 e1426 e1427
pfadd big e1428 e1429 e1430 e1431 e1432 e1433 e1434
pfadd big e1435 e1436 e1437 e1438 e1439 e1440 e1441
pfadd big e1442 e1443 e1444 e1445 e1446 e1447 e1448
pfadd big e1449 e1450 e1451 e1452 e1453 e1454 e1455
pfadd big e1456 e1457 e1458 e1459 e1460 e1461 e1462
pfadd big e1463 e1464 e1465 e1466 e1467 e1468 e1469
pfadd big e1470 e1471 e1472 e1473 e1474 e1475 e1476
get big
pfcount big
pfdebug encoding big
pfadd big e1477 e1478 e1479 e1480 e1481 e1482 e1483
pfadd big e1484 e1485 e1486 e1487 e1488 e1489 e1490
pfadd big e1491 e1492 e1493 e1494 e1495 e1496 e1497
pfadd big e1498 e1499 e1500 e1501 e1502 e1503 e1504
pfadd big e1505 e1506 e1507 e1508 e1509 e1510 e1511
pfadd big e1512 e1513 e1514 e1515 e1516 e1517 e1518
pfadd big e1519 e1520 e1521 e1522 e1523 e1524 e1525
pfadd big e1526 e1527 e1528 e1529 e1530 e1531 e1532
pfadd big e1533 e1534 e1535 e1536 e1537 e1538 e1539
pfadd big e1540 e1541 e1542 e1543 e1544 e1545 e1546
pfadd big e1547 e1548 e1549 e1550 e1551 e1552 e1553
pfadd big e1554 e1555 e1556 e1557 e1558 e1559 e1560
pfadd big e1561 e1562 e1563 e1564 e1565 e1566 e1567
pfadd big e1568 e1569 e1570 e1571 e1572 e1573 e1574
pfadd big e1575 e1576 e1577 e1578 e1579 e1580 e1581
pfadd big e1582 e1583 e1584 e1585 e1586 e1587 e1588
pfadd big e1589 e1590 e1591 e1592 e1593 e1594 e1595
pfadd big e1596 e1597 e1598 e1599 e1600 e1601 e1602
pfadd big e1603 e1604 e1605 e1606 e1607 e1608 e1609
pfadd big e1610 e1611 e1612 e1613 e1614 e1615 e1616
pfadd big e1617 e1618 e1619 e1620 e1621 e1622 e1623
pfadd big e1624 e1625 e1626 e1627 e1628 e1629 e1630
pfadd big e1631 e1632 e1633 e1634 e1635 e1636 e1637
pfadd big e1638 e1639 e1640 e1641 e1642 e1643 e1644
pfadd big e1645 e1646 e1647 e1648 e1649 e1650 e1651
pfadd big e1652 e1653 e1654 e1655 e1656 e1657 e1658
pfadd big e1659 e1660 e1661 e1662 e1663 e1664 e1665
pfadd big e1666 e1667 e1668 e1669 e1670 e1671 e1672
pfadd big e1673 e1674 e1675 e1676 e1677 e1678 e1679
pfadd big e1680 e1681 e1682 e1683 e1684 e1685 e1686
get big
pfcount big
pfdebug encoding big
pfadd big e1687 e1688 e1689 e1690 e1691 e1692 e1693
pfadd big e1694 e1695 e1696 e1697 e1698 e1699 e1700
pfadd big e1701 e1702 e1703 e1704 e1705 e1706 e1707
pfadd big e1708 e1709 e1710 e1711 e1712 e1713 e1714
pfadd big e1715 e1716 e1717 e1718 e1719 e1720 e1721
pfadd big e1722 e1723 e1724 e1725 e1726 e1727 e1728
pfadd big e1729 e1730 e1731 e1732 e1733 e1734 e1735
pfadd big e1736 e1737 e1738 e1739 e1740 e1741 e1742
pfadd big e1743 e1744 e1745 e1746 e1747 e1748 e1749
pfadd big e1750 e1751 e1752 e1753 e1754 e1755 e1756
pfadd big e1757 e1758 e1759 e1760 e1761 e1762 e1763
pfadd big e1764 e1765 e1766 e1767 e1768 e1769 e1770
pfadd big e1771 e1772 e1773 e1774 e1775 e1776 e1777
pfadd big e1778 e1779 e1780 e1781 e1782 e1783 e1784
pfadd big e1785 e1786 e1787 e1788 e1789 e1790 e1791
pfadd big e1792 e1793 e1794 e1795 e1796 e1797 e1798
pfadd big e1799 e1800 e1801 e1802 e1803 e1804 e1805
pfadd big e1806 e1807 e1808 e1809 e1810 e1811 e1812
pfadd big e1813 e1814 e1815 e1816 e1817 e1818 e1819
pfadd big e1820 e1821 e1822 e1823 e1824 e1825 e1826
pfadd big e1827 e1828 e1829 e1830 e1831 e1832 e1833
pfadd big e1834 e1835 e1836 e1837 e1838 e1839 e1840
pfadd big e1841 e1842 e1843 e1844 e1845 e1846 e1847
pfadd big e1848 e1849 e1850 e1851 e1852 e1853 e1854
pfadd big e1855 e1856 e1857 e1858 e1859 e1860 e1861
pfadd big e1862 e1863 e1864 e1865 e1866 e1867 e1868
pfadd big e1869 e1870 e1871 e1872 e1873 e1874 e1875
pfadd big e1876 e1877 e1878 e1879 e1880 e1881 e1882
pfadd big e1883 e1884 e1885 e1886 e1887 e1888 e1889
pfadd big e1890 e1891 e1892 e1893 e1894 e1895 e1896
get big
pfcount big
pfdebug encoding big
pfadd big e1897 e1898 e1899 e1900 e1901 e1902 e1903
pfadd big e1904 e1905 e1906 e1907 e1908 e1909 e1910
pfadd big e1911 e1912 e1913 e1914 e1915 e1916 e1917
pfadd big e1918 e1919 e1920 e1921 e1922 e1923 e1924
pfadd big e1925 e1926 e1927 e1928 e1929 e1930 e1931
pfadd big e1932 e1933 e1934 e1935 e1936 e1937 e1938
pfadd big e1939 e1940 e1941 e1942 e1943 e1944 e1945
pfadd big e1946 e1947 e1948 e1949 e1950 e1951 e1952
pfadd big e1953 e1954 e1955 e1956 e1957 e1958 e1959
pfadd big e1960 e1961 e1962 e1963 e1964 e1965 e1966
pfadd big e1967 e1968 e1969 e1970 e1971 e1972 e1973
pfadd big e1974 e1975 e1976 e1977 e1978 e1979 e1980
pfadd big e1981 e1982 e1983 e1984 e1985 e1986 e1987
pfadd big e1988 e1989 e1990 e1991 e1992 e1993 e1994
pfadd big e1995 e1996 e1997 e1998 e1999 e2000 e2001
pfadd big e2002 e2003 e2004 e2005 e2006 e2007 e2008
pfadd big e2009 e2010 e2011 e2012 e2013 e2014 e2015
pfadd big e2016 e2017 e2018 e2019 e2020 e2021 e2022
pfadd big e2023 e2024 e2025 e2026 e2027 e2028 e2029
pfadd big e2030 e2031 e2032 e2033 e2034 e2035 e2036
pfadd big e2037 e2038 e2039 e2040 e2041 e2042 e2043
pfadd big e2044 e2045 e2046 e2047 e2048 e2049 e2050
pfadd big e2051 e2052 e2053 e2054 e2055 e2056 e2057
pfadd big e2058 e2059 e2060 e2061 e2062 e2063 e2064
pfadd big e2065 e2066 e2067 e2068 e2069 e2070 e2071
pfadd big e2072 e2073 e2074 e2075 e2076 e2077 e2078
pfadd big e2079 e2080 e2081 e2082 e2083 e2084 e2085
pfadd big e2086 e2087 e2088 e2089 e2090 e2091 e2092
pfadd big e2093 e2094 e2095 e2096 e2097 e2098 e2099
pfadd big e2100 e2101 e2102 e2103 e2104 e2105 e2106
get big
pfcount big
pfdebug encoding big
pfadd big e2107 e2108 e2109 e2110 e2111 e2112 e2113
pfadd big e2114 e2115 e2116 e2117 e2118 e2119 e2120
pfadd big e2121 e2122 e2123 e2124 e2125 e2126 e2127
pfadd big e2128 e2129 e2130 e2131 e2132 e2133 e2134
pfadd big e2135 e2136 e2137 e2138 e2139 e2140 e2141
pfadd big e2142 e2143 e2144 e2145 e2146 e2147 e2148
pfadd big e2149 e2150 e2151 e2152 e2153 e2154 e2155
pfadd big e2156 e2157 e2158 e2159 e2160 e2161 e2162
pfadd big e2163 e2164 e2165 e2166 e2167 e2168 e2169
pfadd big e2170 e2171 e2172 e2173 e2174 e2175 e2176
pfadd big e2177 e2178 e2179 e2180 e2181 e2182 e2183
pfadd big e2184 e2185 e2186 e2187 e2188 e2189 e2190
pfadd big e2191 e2192 e2193 e2194 e2195 e2196 e2197
pfadd big e2198 e2199 e2200 e2201 e2202 e2203 e2204
pfadd big e2205 e2206 e2207 e2208 e2209 e2210 e2211
pfadd big e2212 e2213 e2214 e2215 e2216 e2217 e2218
pfadd big e2219 e2220 e2221 e2222 e2223 e2224 e2225
pfadd big e2226 e2227 e2228 e2229 e2230 e2231 e2232
pfadd big e2233 e2234 e2235 e2236 e2237 e2238 e2239
pfadd big e2240 e2241 e2242 e2243 e2244 e2245 e2246
pfadd big e2247 e2248 e2249 e2250 e2251 e2252 e2253
pfadd big e2254 e2255 e2256 e2257 e2258 e2259 e2260
pfadd big e2261 e2262 e2263 e2264 e2265 e2266 e2267
pfadd big e2268 e2269 e2270 e2271 e2272 e2273 e2274
pfadd big e2275 e2276 e2277 e2278 e2279 e2280 e2281
pfadd big e2282 e2283 e2284 e2285 e2286 e2287 e2288
pfadd big e2289 e2290 e2291 e2292 e2293 e2294 e2295
pfadd big e2296 e2297 e2298 e2299 e2300 e2301 e2302
pfadd big e2303 e2304 e2305 e2306 e2307 e2308 e2309
pfadd big e2310 e2311 e2312 e2313 e2314 e2315 e2316
get big
pfcount big
pfdebug encoding big
pfadd big e2317 e2318 e2319 e2320 e2321 e2322 e2323
pfadd big e2324 e2325 e2326 e2327 e2328 e2329 e2330
pfadd big e2331 e2332 e2333 e2334 e2335 e2336 e2337
pfadd big e2338 e2339 e2340 e2341 e2342 e2343 e2344
pfadd big e2345 e2346 e2347 e2348 e2349 e2350 e2351
pfadd big e2352 e2353 e2354 e2355 e2356 e2357 e2358
pfadd big e2359 e2360 e2361 e2362 e2363 e2364 e2365
pfadd big e2366 e2367 e2368 e2369 e2370 e2371 e2372
pfadd big e2373 e2374 e2375 e2376 e2377 e2378 e2379
pfadd big e2380 e2381 e2382 e2383 e2384 e2385 e2386
pfadd big e2387 e2388 e2389 e2390 e2391 e2392 e2393
pfadd big e2394 e2395 e2396 e2397 e2398 e2399 e2400
pfadd big e2401 e2402 e2403 e2404 e2405 e2406 e2407
pfadd big e2408 e2409 e2410 e2411 e2412 e2413 e2414
pfadd big e2415 e2416 e2417 e2418 e2419 e2420 e2421
pfadd big e2422 e2423 e2424 e2425 e2426 e2427 e2428
pfadd big e2429 e2430 e2431 e2432 e2433 e2434 e2435
pfadd big e2436 e2437 e2438 e2439 e2440 e2441 e2442
pfadd big e2443 e2444 e2445 e2446 e2447 e2448 e2449
pfadd big e2450 e2451 e2452 e2453 e2454 e2455 e2456
pfadd big e2457 e2458 e2459 e2460 e2461 e2462 e2463
pfadd big e2464 e2465 e2466 e2467 e2468 e2469 e2470
pfadd big e2471 e2472 e2473 e2474 e2475 e2476 e2477
pfadd big e2478 e2479 e2480 e2481 e2482 e2483 e2484
pfadd big e2485 e2486 e2487 e2488 e2489 e2490 e2491
pfadd big e2492 e2493 e2494 e2495 e2496 e2497 e2498
pfadd big e2499 e2500 e2501 e2502 e2503 e2504 e2505
pfadd big e2506 e2507 e2508 e2509 e2510 e2511 e2512
pfadd big e2513 e2514 e2515 e2516 e2517 e2518 e2519
pfadd big e2520 e2521 e2522 e2523 e2524 e2525 e2526
get big
pfcount big
pfdebug encoding big
pfadd big e2527 e2528 e2529 e2530 e2531 e2532 e2533
pfadd big e2534 e2535 e2536 e2537 e2538 e2539 e2540
pfadd big e2541 e2542 e2543 e2544 e2545 e2546 e2547
pfadd big e2548 e2549 e2550 e2551 e2552 e2553 e2554
pfadd big e2555 e2556 e2557 e2558 e2559 e2560 e2561
pfadd big e2562 e2563 e2564 e2565 e2566 e2567 e2568
pfadd big e2569 e2570 e2571 e2572 e2573 e2574 e2575
pfadd big e2576 e2577 e2578 e2579 e2580 e2581 e2582
pfadd big e2583 e2584 e2585 e2586 e2587 e2588 e2589
pfadd big e2590 e2591 e2592 e2593 e2594 e2595 e2596
pfadd big e2597 e2598 e2599 e2600 e2601 e2602 e2603
pfadd big e2604 e2605 e2606 e2607 e2608 e2609 e2610
pfadd big e2611 e2612 e2613 e2614 e2615 e2616 e2617
pfadd big e2618 e2619 e2620 e2621 e2622 e2623 e2624
pfadd big e2625 e2626 e2627 e2628 e2629 e2630 e2631
pfadd big e2632 e2633 e2634 e2635 e2636 e2637 e2638
pfadd big e2639 e2640 e2641 e2642 e2643 e2644 e2645
pfadd big e2646 e2647 e2648 e2649 e2650 e2651 e2652
pfadd big e2653 e2654 e2655 e2656 e2657 e2658 e2659
pfadd big e2660 e2661 e2662 e2663 e2664 e2665 e2666
pfadd big e2667 e2668 e2669 e2670 e2671 e2672 e2673
pfadd big e2674 e2675 e2676 e2677 e2678 e2679 e2680
pfadd big e2681 e2682 e2683 e2684 e2685 e2686 e2687
pfadd big e2688 e2689 e2690 e2691 e2692 e2693 e2694
pfadd big e2695 e2696 e2697 e2698 e2699 e2700 e2701
pfadd big e2702 e2703 e2704 e2705 e2706 e2707 e2708
pfadd big e2709 e2710 e2711 e2712 e2713 e2714 e2715
pfadd big e2716 e2717 e2718 e2719 e2720 e2721 e2722
pfadd big e2723 e2724 e2725 e2726 e2727 e2728 e2729
pfadd big e2730 e2731 e2732 e2733 e2734 e2735 e2736
get big
pfcount big
pfdebug encoding big
pfadd big e2737 e2738 e2739 e2740 e2741 e2742 e2743
pfadd big e2744 e2745 e2746 e2747 e2748 e2749 e2750
pfadd big e2751 e2752 e2753 e2754 e2755 e2756 e2757
pfadd big e2758 e2759 e2760 e2761 e2762 e2763 e2764
pfadd big e2765 e2766 e2767 e2768 e2769 e2770 e2771
pfadd big e2772 e2773 e2774 e2775 e2776 e2777 e2778
pfadd big e2779 e2780 e2781 e2782 e2783 e2784 e2785
pfadd big e2786 e2787 e2788 e2789 e2790 e2791 e2792
pfadd big e2793 e2794 e2795 e2796 e2797 e2798 e2799
pfadd big e2800 e2801 e2802 e2803 e2804 e2805 e2806
pfadd big e2807 e2808 e2809 e2810 e2811 e2812 e2813
pfadd big e2814 e2815 e2816 e2817 e2818 e2819 e2820
pfadd big e2821 e2822 e2823 e2824 e2825 e2826 e2827
pfadd big e2828 e2829 e2830 e2831 e2832 e2833 e2834
pfadd big e2835 e2836 e2837 e2838 e2839 e2840 e2841
pfadd big e2842 e2843 e2844 e2845 e2846 e2847 e2848
pfadd big e2849 e2850 e2851 e2852 e2853 e2854 e2855
pfadd big e2856 e2857 e2858 e2859 e2860 e2861 e2862
pfadd big e2863 e2864 e2865 e2866 e2867 e2868 e2869
pfadd big e2870 e2871 e2872 e2873 e2874 e2875 e2876
pfadd big e2877 e2878 e2879 e2880 e2881 e2882 e2883
pfadd big e2884 e2885 e2886 e2887 e2888 e2889 e2890
pfadd big e2891 e2892 e2893 e2894 e2895 e2896 e2897
pfadd big e2898 e2899 e2900 e2901 e2902 e2903 e2904
pfadd big e2905 e2906 e2907 e2908 e2909 e2910 e2911
pfadd big e2912 e2913 e2914 e2915 e2916 e2917 e2918
pfadd big e2919 e2920 e2921 e2922 e2923 e2924 e2925
pfadd big e2926 e2927 e2928 e2929 e2930 e2931 e2932
pfadd big e2933 e2934 e2935 e2936 e2937 e2938 e2939
pfadd big e2940 e2941 e2942 e2943 e2944 e2945 e2946
get big
pfcount big
pfdebug encoding big
pfadd big e2947 e2948 e2949 e2950 e2951 e2952 e2953
pfadd big e2954 e2955 e2956 e2957 e2958 e2959 e2960
pfadd big e2961 e2962 e2963 e2964 e2965 e2966 e2967
pfadd big e2968 e2969 e2970 e2971 e2972 e2973 e2974
pfadd big e2975 e2976 e2977 e2978 e2979 e2980 e2981
pfadd big e2982 e2983 e2984 e2985 e2986 e2987 e2988
pfadd big e2989 e2990 e2991 e2992 e2993 e2994 e2995
pfadd big e2996 e2997 e2998 e2999 e3000 e3001 e3002
pfcount big
get big
pfcount big h
pfcount h big nokey
pfmerge m h nokey
get m
pfmerge m big
get m
pfcount m
pfmerge m2 h
pfdebug decode m2
pfdebug todense m2
pfdebug todense m2
pfdebug decode m2
pfdebug encoding m2
get m2
pfdebug getreg h
get h
pfdebug foo h
pfdebug getreg nokey
set s hello
pfadd s a
pfcount s
pfcount s h
pfmerge s h
pfmerge h s
pfdebug encoding s
set i 123
pfadd i a
lpush l a
pfadd l a
pfcount l
pfcount h l
pfmerge l h
pfmerge h l
pfmerge x
get x
pfcount x
"#,
    );
    let mut s = s;
    // Damaged headers: an unknown encoding byte, and a sparse HLL claiming
    // to be dense.
    s.push(vec![&b"setrange"[..], &b"h"[..], &b"4"[..], &b"\x02"[..]]);
    s.push(vec![&b"pfcount"[..], &b"h"[..]]);
    s.push(vec![&b"setrange"[..], &b"h2"[..], &b"4"[..], &b"\x00"[..]]);
    s.push(vec![&b"pfcount"[..], &b"h2"[..]]);
    s.push(vec![&b"pfadd"[..], &b"h2"[..], &b"a"[..]]);
    same_replies(srv.addr.port(), &s).await;
}

/// 100k pseudo-random elements in batches, at several sparse limits: the
/// HLL bytes (GET) and PFCOUNT must be identical to redis-server's at every
/// step, including the sparse→dense promotion.
#[tokio::test]
async fn differential_random_elements() {
    let srv = TestServer::start();
    let mut seed: u64 = 0xdead_beef_cafe_f00d;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut cmds: Vec<Vec<Vec<u8>>> = vec![vec![b"flushall".to_vec()]];
    for (limit, key, total, batch) in [
        ("3000", "r1", 100_000u32, 500u32),
        ("200", "r2", 2000, 7),
        ("12000", "r3", 20_000, 50),
    ] {
        cmds.push(vec![
            b"config".to_vec(),
            b"set".to_vec(),
            b"hll-sparse-max-bytes".to_vec(),
            limit.as_bytes().to_vec(),
        ]);
        let mut added = 0;
        while added < total {
            let mut c = vec![b"pfadd".to_vec(), key.as_bytes().to_vec()];
            for _ in 0..batch {
                c.push(format!("{:x}", rnd() >> (rnd() % 40)).into_bytes());
            }
            added += batch;
            cmds.push(c);
            if added % (batch * 20) == 0 || total < 5000 {
                cmds.push(vec![b"get".to_vec(), key.as_bytes().to_vec()]);
                cmds.push(vec![b"pfcount".to_vec(), key.as_bytes().to_vec()]);
            }
        }
        cmds.push(vec![b"get".to_vec(), key.as_bytes().to_vec()]);
        cmds.push(vec![b"pfcount".to_vec(), key.as_bytes().to_vec()]);
    }
    cmds.push(vec![
        b"pfcount".to_vec(),
        b"r1".to_vec(),
        b"r2".to_vec(),
        b"r3".to_vec(),
    ]);
    cmds.push(vec![b"pfmerge".to_vec(), b"r2".to_vec(), b"r3".to_vec()]);
    cmds.push(vec![b"get".to_vec(), b"r2".to_vec()]);
    cmds.push(vec![b"pfcount".to_vec(), b"r2".to_vec()]);
    let s: Vec<Vec<&[u8]>> = cmds
        .iter()
        .map(|c| c.iter().map(|a| a.as_slice()).collect())
        .collect();
    same_replies(srv.addr.port(), &s).await;
}

/// Values move both ways: an HLL built by redis-server is read and extended
/// by Cinnabar, and one built by Cinnabar by redis-server, with identical
/// counts and bytes.
#[tokio::test]
async fn values_round_trip_with_redis() {
    let Some(reference) = RedisRef::start() else {
        return;
    };
    let srv = TestServer::start();
    let mut ours = Conn::connect(srv.addr.port()).await;
    let mut theirs = Conn::connect(reference.port).await;
    for (n, key) in [(50u32, &b"small"[..]), (5000, b"large")] {
        let elems: Vec<Vec<u8>> = (0..n).map(|i| format!("x{i}").into_bytes()).collect();
        let mut add: Vec<&[u8]> = vec![b"PFADD", key];
        add.extend(elems.iter().map(|e| e.as_slice()));
        // Redis → Cinnabar.
        theirs.call(&add).await;
        let v = bulk(&theirs.call(&[b"GET", key]).await);
        ours.call(&[b"SET", key, &v]).await;
        assert_eq!(
            ours.call(&[b"PFCOUNT", key]).await,
            theirs.call(&[b"PFCOUNT", key]).await
        );
        assert_eq!(
            ours.call(&[b"PFADD", key, b"y1", b"y2", b"y3"]).await,
            theirs.call(&[b"PFADD", key, b"y1", b"y2", b"y3"]).await
        );
        assert_eq!(
            ours.call(&[b"GET", key]).await,
            theirs.call(&[b"GET", key]).await
        );
        // Cinnabar → Redis.
        let other = [key, b"2"].concat();
        let mut add2: Vec<&[u8]> = vec![b"PFADD", &other];
        add2.extend(elems.iter().map(|e| e.as_slice()));
        ours.call(&add2).await;
        let v = bulk(&ours.call(&[b"GET", &other]).await);
        theirs.call(&[b"SET", &other, &v]).await;
        assert_eq!(
            ours.call(&[b"PFCOUNT", &other]).await,
            theirs.call(&[b"PFCOUNT", &other]).await
        );
        assert_eq!(
            ours.call(&[b"PFMERGE", &other, key]).await,
            theirs.call(&[b"PFMERGE", &other, key]).await
        );
        assert_eq!(
            ours.call(&[b"GET", &other]).await,
            theirs.call(&[b"GET", &other]).await
        );
        assert_eq!(
            ours.call(&[b"PFCOUNT", &other, key]).await,
            theirs.call(&[b"PFCOUNT", &other, key]).await
        );
    }
}
